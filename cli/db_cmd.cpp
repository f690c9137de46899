#include "cli/db_cmd.h"

#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/admin_client.h"
#include "cli/namespace_config.h"
#include "cli/table.h"
#include "cli/units.h"

namespace quire::cli {
namespace {

struct AdminOptions {
  std::string url = "http://127.0.0.1:9090";
  std::string auth_key;
  bool json = false;
};

// The options of every `quire db` subcommand, on each leaf so `quire db list --help` shows them.
// Each leaf needs a struct of its own: CLI11 applies environment variables to the options of
// leaves that were not given too, which would overwrite a shared struct's command-line values.
void add_admin_options(CLI::App* cmd, AdminOptions& o) {
  cmd->add_option("--admin-url", o.url, "Admin API of the server (quire serve --admin-listen)")
      ->envname("QUIRE_ADMIN_URL")
      ->capture_default_str();
  cmd->add_option("--admin-auth-key", o.auth_key,
                  "Key of the admin API (quire serve --admin-auth-key), sent as a Bearer token")
      ->envname("QUIRE_ADMIN_AUTH_KEY");
  cmd->add_flag("--json", o.json, "Print the server's JSON answer instead of a table");
}

// Reports a failed call on stderr and returns the exit code for it.
int report(const AdminClient& client, const AdminError& e) {
  if (e.status == 0) {
    std::cerr << "quire: " << e.message << "\n"
              << "hint: is a server running with --admin-listen at http://"
              << client.endpoint().host_header << client.endpoint().base_path
              << "? (--admin-url or QUIRE_ADMIN_URL points elsewhere)\n";
  } else {
    std::cerr << "quire: " << sanitize_cell(e.message) << " (HTTP " << e.status << ")\n";
    if (e.status == 401 || e.status == 403) {
      std::cerr << "hint: pass the admin key with --admin-auth-key or QUIRE_ADMIN_AUTH_KEY\n";
    }
  }
  return kExitFailure;
}

// What --json prints: the server's answer as sent ("{}" for an empty one), one line.
void print_json(const AdminReply& reply) {
  std::string body = reply.body;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  std::cout << (body.empty() ? "{}" : body) << "\n";
}

// Runs one admin call; on success prints the JSON (--json) or calls `human`.
template <class Human>
int run_call(const AdminOptions& o, std::string_view method,
             const std::vector<std::string>& segments,
             const std::optional<boost::json::object>& body, Human human) {
  auto endpoint = parse_http_url(o.url);
  if (!endpoint) {
    std::cerr << "quire: --admin-url: " << endpoint.error() << "\n";
    return kExitUsage;
  }
  AdminClient client(std::move(*endpoint), o.auth_key);
  auto reply = client.call(method, segments, body);
  if (!reply) return report(client, reply.error());
  if (o.json) {
    print_json(*reply);
    return kExitOk;
  }
  return human(*reply);
}

std::vector<std::string> ns_path(const std::string& name) { return {"v1", "namespaces", name}; }
std::vector<std::string> ns_path(const std::string& name, const std::string& action) {
  return {"v1", "namespaces", name, action};
}

// Prints an object answer as key/value lines, or `done` when the answer has nothing in it.
int print_object_or(const AdminReply& reply, const std::string& done) {
  if (reply.json.is_object() && !reply.json.as_object().empty()) {
    std::cout << render_object(reply.json.as_object());
  } else {
    std::cout << done << "\n";
  }
  return kExitOk;
}

std::string quoted(const std::string& name) { return "'" + sanitize_cell(name) + "'"; }

Expected<std::string, std::string> read_dump(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return unexpected("cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return unexpected("cannot read " + path);
  return text.str();
}

struct CreateOptions {
  std::string name;
  std::string from_dump;
  std::string max_db_size;
  std::string txn_timeout_s;
};

int run_create(const AdminOptions& o, const CreateOptions& c) {
  boost::json::object body;
  // The same typing and checks as `quire db config --set`.
  for (const auto& [key, text] :
       {std::pair<std::string, const std::string*>{"max_db_size", &c.max_db_size},
        {"txn_timeout_s", &c.txn_timeout_s}}) {
    if (text->empty()) continue;
    auto kv = parse_config_assignment(key + "=" + *text);
    if (!kv) {
      std::cerr << "quire: " << kv.error() << "\n";
      return kExitUsage;
    }
    body[key] = std::move(kv->second);
  }
  if (!c.from_dump.empty()) {
    auto dump = read_dump(c.from_dump);
    if (!dump) {
      std::cerr << "quire: --from-dump: " << dump.error() << "\n";
      return kExitFailure;
    }
    body["dump"] = std::move(*dump);
  }
  return run_call(o, "POST", ns_path(c.name, "create"), body, [&](const AdminReply&) {
    std::cout << "created namespace " << quoted(c.name)
              << (c.from_dump.empty() ? "" : " from " + c.from_dump) << "\n";
    return kExitOk;
  });
}

int run_list(const AdminOptions& o) {
  return run_call(o, "GET", {"v1", "namespaces"}, std::nullopt, [](const AdminReply& reply) {
    auto text = render_namespace_list(reply.json);
    if (!text) {
      std::cerr << "quire: unexpected answer: " << text.error() << "\n";
      return kExitFailure;
    }
    std::cout << *text;
    return kExitOk;
  });
}

// Without --yes, deleting needs a person at a terminal who types the name back.
bool confirm_delete(const std::string& name) {
  if (!::isatty(STDIN_FILENO)) {
    std::cerr << "quire: refusing to delete " << quoted(name)
              << " without --yes (stdin is not a terminal to confirm on)\n";
    return false;
  }
  std::cerr << "Delete namespace " << quoted(name)
            << " and all of its data? This cannot be undone.\nType the name to confirm: "
            << std::flush;
  std::string typed;
  if (!std::getline(std::cin, typed) || typed != name) {
    std::cerr << "quire: not confirmed; nothing deleted\n";
    return false;
  }
  return true;
}

int run_delete(const AdminOptions& o, const std::string& name, bool yes) {
  if (!yes && !confirm_delete(name)) return kExitUsage;
  return run_call(o, "DELETE", ns_path(name), std::nullopt, [&](const AdminReply&) {
    std::cout << "deleted namespace " << quoted(name) << "\n";
    return kExitOk;
  });
}

std::string value_text(std::string_view key, const boost::json::value& v);

// Where to restore to: {"timestamp": T} or {"frame": N}, from the lineage {"log_id": ID} when
// given; nullopt (and a message) when both a time and a frame are.
struct PointInTime {
  std::string timestamp;
  std::int64_t frame = -1;
  std::string log_id;
};

std::optional<boost::json::object> point_body(const PointInTime& p) {
  boost::json::object body;
  if (!p.timestamp.empty() && p.frame >= 0) {
    std::cerr << "quire: give either --timestamp or --frame, not both\n";
    return std::nullopt;
  }
  if (!p.timestamp.empty()) body["timestamp"] = p.timestamp;
  if (p.frame >= 0) body["frame"] = p.frame;
  if (!p.log_id.empty()) body["log_id"] = p.log_id;
  return body;
}

std::string restored_line(const AdminReply& r) {
  const auto* o = r.json.is_object() ? r.json.as_object().if_contains("restored") : nullptr;
  if (!o || !o->is_object()) return "";
  const auto& x = o->as_object();
  std::string out = " as of frame " + value_text("frame", x.contains("frame") ? x.at("frame") : nullptr);
  if (const auto* t = x.if_contains("commit_time"); t && t->is_string()) {
    out += " (committed " + sanitize_cell(t->as_string()) + ")";
  }
  return out;
}

int run_fork(const AdminOptions& o, const std::string& from, const std::string& to,
             const PointInTime& at) {
  auto body = point_body(at);
  if (!body) return kExitUsage;
  const bool pitr = !body->empty();
  return run_call(o, "POST", {"v1", "namespaces", from, "fork", to},
                  pitr ? std::optional<boost::json::object>(*body) : std::nullopt,
                  [&](const AdminReply& r) {
                    std::cout << "forked " << quoted(from) << " to " << quoted(to)
                              << (pitr ? restored_line(r) : "") << "\n";
                    return kExitOk;
                  });
}

int run_restore(const AdminOptions& o, const std::string& name, const PointInTime& at) {
  auto body = point_body(at);
  if (!body) return kExitUsage;
  return run_call(o, "POST", ns_path(name, "restore"), *body, [&](const AdminReply& r) {
    std::cout << "restored " << quoted(name) << restored_line(r) << "\n";
    const auto* p = r.json.is_object() ? r.json.as_object().if_contains("previous") : nullptr;
    if (p && p->is_object()) {
      const auto& x = p->as_object();
      std::cout << "the state it replaced stays restorable: log "
                << value_text("log_id", x.contains("log_id") ? x.at("log_id") : nullptr)
                << " up to frame "
                << value_text("last_frame", x.contains("last_frame") ? x.at("last_frame") : nullptr)
                << "\n";
    }
    return kExitOk;
  });
}

int run_backup_status(const AdminOptions& o, const std::string& name) {
  return run_call(o, "GET", ns_path(name, "backup"), std::nullopt, [&](const AdminReply& r) {
    if (!r.json.is_object()) return print_object_or(r, "no backup for " + quoted(name));
    const auto& doc = r.json.as_object();
    const auto* range = doc.if_contains("restorable");
    if (!range || !range->is_object()) {
      std::cout << "no backup of " << quoted(name) << " yet\n";
    } else {
      const auto& x = range->as_object();
      auto get = [&](const char* k) { return value_text(k, x.contains(k) ? x.at(k) : nullptr); };
      std::cout << "restorable from " << get("first_time") << " (frame " << get("first_frame")
                << ") to " << get("last_time") << " (frame " << get("last_frame") << "), log "
                << get("log_id") << "\n";
    }
    // Every lineage (a restore in place or a lost log starts a new one): what --log-id takes.
    if (const auto* ls = doc.if_contains("lineages"); ls && ls->is_array()) {
      for (const auto& l : ls->as_array()) {
        if (!l.is_object()) continue;
        const auto& x = l.as_object();
        auto get = [&](const char* k) { return value_text(k, x.contains(k) ? x.at(k) : nullptr); };
        std::cout << "lineage " << get("log_id") << ": ";
        if (x.contains("first_frame")) {
          std::cout << "frames " << get("first_frame") << ".." << get("last_frame") << ", "
                    << get("first_time") << " to " << get("last_time") << "\n";
        } else {
          std::cout << "not restorable (" << get("error") << ")\n";
        }
      }
    }
    if (const auto* s = doc.if_contains("shipping"); s && s->is_object()) {
      std::cout << render_object(s->as_object());
    }
    return kExitOk;
  });
}

int run_config(const AdminOptions& o, const std::string& name,
               const std::vector<std::string>& assignments) {
  if (assignments.empty()) {
    return run_call(o, "GET", ns_path(name, "config"), std::nullopt, [&](const AdminReply& r) {
      return print_object_or(r, "no settings for " + quoted(name));
    });
  }
  boost::json::object body;
  for (const auto& a : assignments) {
    auto kv = parse_config_assignment(a);
    if (!kv) {
      std::cerr << "quire: " << kv.error() << "\n";
      return kExitUsage;
    }
    body[kv->first] = std::move(kv->second);
  }
  return run_call(o, "POST", ns_path(name, "config"), body, [&](const AdminReply& r) {
    return print_object_or(r, "updated the config of " + quoted(name));
  });
}

int run_stats(const AdminOptions& o, const std::string& name) {
  return run_call(o, "GET", ns_path(name, "stats"), std::nullopt, [&](const AdminReply& r) {
    return print_object_or(r, "no stats for " + quoted(name));
  });
}

int run_checkpoint(const AdminOptions& o, const std::string& name) {
  return run_call(o, "POST", ns_path(name, "checkpoint"), std::nullopt, [&](const AdminReply& r) {
    std::cout << "checkpointed " << quoted(name) << "\n";
    if (r.json.is_object() && !r.json.as_object().empty()) {
      std::cout << render_object(r.json.as_object());
    }
    return kExitOk;
  });
}

bool is_byte_count(std::string_view key) {
  return key == "max_db_size" || key == "size_bytes" || key == "storage_bytes_used" ||
         (key.size() > 6 && key.substr(key.size() - 6) == "_bytes");
}

std::string value_text(std::string_view key, const boost::json::value& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return sanitize_cell(v.as_string());
  if (v.is_bool()) return v.as_bool() ? "true" : "false";
  if (is_byte_count(key) && (v.is_uint64() || (v.is_int64() && v.as_int64() >= 0))) {
    const auto bytes = v.is_uint64() ? v.as_uint64() : static_cast<std::uint64_t>(v.as_int64());
    return std::to_string(bytes) + " (" + format_size(bytes) + ")";
  }
  if (v.is_double()) {
    char buf[32];  // 2.5, not JSON's 2.5E0
    std::snprintf(buf, sizeof buf, "%.15g", v.as_double());
    return buf;
  }
  return sanitize_cell(boost::json::serialize(v));
}

}  // namespace

Expected<std::string, std::string> render_namespace_list(const boost::json::value& reply) {
  const auto* object = reply.if_object();
  const auto* list = object ? object->if_contains("namespaces") : nullptr;
  if (!list || !list->is_array()) {
    return unexpected(std::string("expected {\"namespaces\": [...]}"));
  }
  if (list->as_array().empty()) return std::string("no namespaces\n");
  std::vector<std::vector<std::string>> rows;
  for (const auto& item : list->as_array()) {
    const auto* ns = item.if_object();
    const auto* name = ns ? ns->if_contains("name") : nullptr;
    if (!name || !name->is_string()) {
      return unexpected(std::string("a namespace entry without a \"name\" string"));
    }
    std::string size = "-";
    if (const auto* s = ns->if_contains("size_bytes")) {
      if (s->is_uint64())
        size = format_size(s->as_uint64());
      else if (s->is_int64() && s->as_int64() >= 0) {
        size = format_size(static_cast<std::uint64_t>(s->as_int64()));
      }
    }
    std::string last_access = "never";
    if (const auto* l = ns->if_contains("last_access"); l && l->is_string()) {
      last_access = sanitize_cell(l->as_string());
    }
    std::string open = "-";
    if (const auto* b = ns->if_contains("open"); b && b->is_bool()) {
      open = b->as_bool() ? "yes" : "no";
    }
    rows.push_back({sanitize_cell(name->as_string()), size, last_access, open});
  }
  return render_table({"NAME", "SIZE", "LAST ACCESS", "OPEN"}, rows,
                      {Align::kLeft, Align::kRight, Align::kLeft, Align::kLeft});
}

std::string render_object(const boost::json::object& object) {
  std::vector<std::pair<std::string, std::string>> pairs;
  for (const auto& [key, value] : object) {
    pairs.emplace_back(sanitize_cell(key), value_text(key, value));
  }
  return render_key_values(pairs);
}

Command add_db_command(CLI::App& parent) {
  auto* db = parent.add_subcommand(
      "db", "Manage the databases (namespaces) of a running server through its admin API");
  db->require_subcommand(1);
  db->footer(
      "The server must run with the admin API on: quire serve --admin-listen 127.0.0.1:9090\n"
      "[--admin-auth-key KEY]. Every subcommand takes:\n"
      "  --admin-url URL       the admin API (default http://127.0.0.1:9090; env QUIRE_ADMIN_URL)\n"
      "  --admin-auth-key KEY  sent as `Authorization: Bearer KEY` (env QUIRE_ADMIN_AUTH_KEY)\n"
      "  --json                print the server's JSON answer (for scripts) instead of tables\n"
      "Exit codes: 0 done; 1 the server refused (its error message goes to stderr) or could not\n"
      "be reached; 2 the command line was wrong. `quire db SUBCOMMAND --help` gives details.");

  // One AdminOptions per leaf, in leaf order (a deque keeps their addresses stable).
  auto admin = std::make_shared<std::deque<AdminOptions>>();
  auto create_options = std::make_shared<CreateOptions>();
  auto names = std::make_shared<std::vector<std::string>>(2);  // positional NAME / FROM TO
  auto yes = std::make_shared<bool>(false);
  auto assignments = std::make_shared<std::vector<std::string>>();

  auto* create = db->add_subcommand("create",
                                    "Create an empty namespace, or one loaded from "
                                    "an SQL dump");
  create->add_option("name", create_options->name, "Name of the new namespace")->required();
  create->add_option("--from-dump", create_options->from_dump,
                     "SQL text to run in the new database (as written by sqlite3's .dump; - "
                     "reads stdin)");
  create->add_option("--max-db-size", create_options->max_db_size,
                     "Largest the database may grow: bytes, or a size such as 512KiB, 1GiB "
                     "(binary) or 10MB, 1GB (decimal)");
  create->add_option("--txn-timeout", create_options->txn_timeout_s,
                     "Seconds a transaction may hold the write lock between requests");
  add_admin_options(create, admin->emplace_back());

  auto* list = db->add_subcommand(
      "list",
      "List the namespaces: NAME, SIZE, LAST ACCESS (never if not used since the "
      "server started), OPEN");
  add_admin_options(list, admin->emplace_back());

  auto* del = db->add_subcommand(
      "delete", "Delete a namespace and its data (asks you to type the name unless --yes)");
  del->add_option("name", (*names)[0], "Namespace to delete")->required();
  del->add_flag("--yes", *yes, "Do not ask; needed when stdin is not a terminal");
  add_admin_options(del, admin->emplace_back());

  auto at = std::make_shared<PointInTime>();
  auto* fork = db->add_subcommand(
      "fork", "Copy namespace FROM, as it is now or as it was at --timestamp, to a new one TO");
  fork->add_option("from", (*names)[0], "Namespace to copy")->required();
  fork->add_option("to", (*names)[1], "Name of the copy (must not exist)")->required();
  fork->add_option("--timestamp", at->timestamp,
                   "Branch from the backup as of this RFC 3339 time (e.g. 2026-01-02T03:04:05Z; "
                   "the server needs --backup-url; FROM may since have been deleted)");
  fork->add_option("--frame", at->frame, "Branch from the backup as of this commit frame");
  fork->add_option("--log-id", at->log_id,
                   "Branch from this lineage of the backup (`quire db backup FROM` lists them): "
                   "its latest point, or --timestamp / --frame within it")
      ->option_text("ID")
      ->check(non_empty());
  add_admin_options(fork, admin->emplace_back());

  auto* config = db->add_subcommand(
      "config", "Show a namespace's settings, or change them with --set key=value");
  config->add_option("name", (*names)[0], "Namespace")->required();
  config
      ->add_option(
          "--set", *assignments,
          "key=value; repeat for several. Keys: block_reads, block_writes, "
          "allow_attach (true|false), block_reason, jwt_key (text), max_db_size "
          "(bytes, 10MB or 10MiB), txn_timeout_s (seconds). An empty value resets to the default")
      ->allow_extra_args(false);
  add_admin_options(config, admin->emplace_back());

  auto* stats = db->add_subcommand(
      "stats",
      "Usage of a namespace since it was opened: rows read and written, queries, "
      "storage bytes");
  stats->add_option("name", (*names)[0], "Namespace")->required();
  add_admin_options(stats, admin->emplace_back());

  auto* checkpoint =
      db->add_subcommand("checkpoint", "Checkpoint a namespace's WAL into its database file");
  checkpoint->add_option("name", (*names)[0], "Namespace")->required();
  add_admin_options(checkpoint, admin->emplace_back());

  auto* restore = db->add_subcommand(
      "restore",
      "Restore a namespace in place from the server's backup (--backup-url), to the latest "
      "point, a --timestamp or a --frame; the state it replaces stays restorable");
  restore->add_option("name", (*names)[0], "Namespace (created if it was deleted)")->required();
  restore->add_option("--timestamp", at->timestamp,
                      "RFC 3339 time, e.g. 2026-01-02T03:04:05Z or 2026-01-02T04:04:05+01:00");
  restore->add_option("--frame", at->frame, "Commit frame");
  restore->add_option("--log-id", at->log_id,
                      "From this lineage (`quire db backup NAME` lists them; the state a restore "
                      "replaced is one): its latest point, or --timestamp / --frame within it")
      ->option_text("ID")
      ->check(non_empty());
  add_admin_options(restore, admin->emplace_back());

  auto* backup = db->add_subcommand(
      "backup", "Show a namespace's restorable range and how its continuous backup is doing");
  backup->add_option("name", (*names)[0], "Namespace")->required();
  add_admin_options(backup, admin->emplace_back());

  return Command{db, [=]() {
                   const auto& a = *admin;
                   const auto& n = *names;
                   if (create->parsed()) return run_create(a[0], *create_options);
                   if (list->parsed()) return run_list(a[1]);
                   if (del->parsed()) return run_delete(a[2], n[0], *yes);
                   if (fork->parsed()) return run_fork(a[3], n[0], n[1], *at);
                   if (restore->parsed()) return run_restore(a[7], n[0], *at);
                   if (backup->parsed()) return run_backup_status(a[8], n[0]);
                   if (config->parsed()) return run_config(a[4], n[0], *assignments);
                   if (stats->parsed()) return run_stats(a[5], n[0]);
                   return run_checkpoint(a[6], n[0]);
                 }};
}

}  // namespace quire::cli
