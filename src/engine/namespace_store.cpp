#include "engine/namespace_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/executor.h"
#include "log/log.h"
#include "log/snapshot.h"

namespace quire::engine {

namespace fs = std::filesystem;
namespace bj = boost::json;

namespace {

constexpr const char* kDefault = "default";
constexpr const char* kDataFile = "data";
constexpr const char* kConfigFile = "config.json";

NamespaceError error(NamespaceError::Kind kind, std::string message) {
  return {kind, std::move(message)};
}

NamespaceError not_found(std::string_view name) {
  return error(NamespaceError::Kind::kNotFound,
               "Namespace '" + std::string(name) + "' does not exist");
}

NamespaceError invalid_name(std::string_view name) {
  return error(NamespaceError::Kind::kInvalidName,
               "Invalid namespace name '" + std::string(name.substr(0, 80)) +
                   "': use 1 to 64 characters of A-Z, a-z, 0-9, '-' and '_'");
}

// A name for a scratch directory beside the namespaces (never a valid namespace name).
std::string scratch_name(std::string_view purpose, std::string_view name) {
  static std::atomic<std::uint64_t> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return "." + std::string(purpose) + "-" + std::string(name) + "-" + std::to_string(counter++) +
         "-" + std::to_string(rng() % 1000000);
}

NamespaceError already_exists(std::string_view name) {
  return error(NamespaceError::Kind::kExists,
               "Namespace '" + std::string(name) + "' already exists");
}

Expected<void, NamespaceError> sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot open " + path.string() + ": " + std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot sync " + path.string() + ": " + std::strerror(err)));
  return {};
}

// Writes `bytes` to a new file, and syncs it if `sync`.
Expected<void, NamespaceError> write_new_file(const fs::path& path, std::string_view bytes,
                                              bool sync) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot create " + path.string() + ": " + std::strerror(errno)));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return unexpected(error(NamespaceError::Kind::kIo,
                              "cannot write " + path.string() + ": " + std::strerror(err)));
    }
    done += static_cast<std::size_t>(n);
  }
  const int rc = sync ? ::fsync(fd) : 0;
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot sync " + path.string() + ": " + std::strerror(err)));
  return {};
}

Expected<void, NamespaceError> write_file_synced(const fs::path& path, std::string_view bytes) {
  return write_new_file(path, bytes, true);
}

// rename(2) that fails (EEXIST or ENOTEMPTY) instead of replacing an existing target.
Expected<void, int> rename_no_replace(const fs::path& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return {};
  return unexpected(errno);
}

// The bytes of a database file in WAL mode holding what `dump_sql` creates: the script runs on
// an in-memory database (as written: sqlite3's .dump brings its own BEGIN ... COMMIT), which is
// then serialised and marked as a WAL database (file format bytes 18 and 19 = 2).
Expected<std::string, NamespaceError> database_from_dump(const std::string& dump_sql,
                                                         const sqlite::OpenOptions& open) {
  auto conn = sqlite::Connection::open(":memory:", open);
  if (!conn) {
    return unexpected(
        error(NamespaceError::Kind::kSqlite, "cannot create database: " + conn.error().message));
  }
  if (auto r = execute_script(**conn, dump_sql); !r) {
    return unexpected(
        error(NamespaceError::Kind::kSqlite, "the dump failed: " + r.error().message));
  }
  if ((*conn)->in_transaction()) {
    if (auto c = (*conn)->exec("COMMIT"); !c) {
      return unexpected(
          error(NamespaceError::Kind::kSqlite, "the dump failed: " + c.error().message));
    }
  }
  sqlite3_int64 size = 0;
  unsigned char* bytes = sqlite3_serialize((*conn)->handle(), "main", &size, 0);
  if (!bytes || size < 100) {
    sqlite3_free(bytes);
    return unexpected(error(NamespaceError::Kind::kSqlite, "cannot serialise the new database"));
  }
  std::string image(reinterpret_cast<const char*>(bytes), static_cast<std::size_t>(size));
  sqlite3_free(bytes);
  image[18] = 2;  // write version: WAL
  image[19] = 2;  // read version: WAL
  return image;
}

Expected<void, NamespaceError> create_log(const fs::path& dir, const fs::path& db) {
  auto base = log::FilePageSource::open(db);
  if (!base)
    return unexpected(error(NamespaceError::Kind::kIo, "replication log: " + base.error().message));
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto created = log::ReplicationLog::create(dir, {}, &base.value(), now);
  if (!created)
    return unexpected(
        error(NamespaceError::Kind::kIo, "replication log: " + created.error().message));
  return {};
}

Expected<void, NamespaceError> write_file_atomically(const fs::path& path,
                                                     const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return unexpected(error(NamespaceError::Kind::kIo, "cannot write " + tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec)
    return unexpected(
        error(NamespaceError::Kind::kIo, "cannot write " + path.string() + ": " + ec.message()));
  return {};
}

Expected<NamespaceConfig, NamespaceError> read_config(const fs::path& dir) {
  std::ifstream in(dir / kConfigFile, std::ios::binary);
  if (!in) return NamespaceConfig{};  // none yet: defaults
  std::stringstream text;
  text << in.rdbuf();
  auto config = namespace_config_from_json(text.str());
  if (!config) {
    return unexpected(error(NamespaceError::Kind::kIo,
                            "bad " + (dir / kConfigFile).string() + ": " + config.error()));
  }
  return config.value();
}

std::uint64_t file_size_or_zero(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : n;
}

}  // namespace

std::string to_json(const NamespaceConfig& c) {
  bj::object o;
  o["block_reads"] = c.block_reads;
  o["block_writes"] = c.block_writes;
  o["block_reason"] = c.block_reason ? bj::value(*c.block_reason) : bj::value(nullptr);
  o["max_db_size"] = c.max_db_size ? bj::value(*c.max_db_size) : bj::value(nullptr);
  o["txn_timeout_s"] = c.txn_timeout_s ? bj::value(*c.txn_timeout_s) : bj::value(nullptr);
  o["jwt_key"] = c.jwt_key ? bj::value(*c.jwt_key) : bj::value(nullptr);
  o["allow_attach"] = c.allow_attach;
  return bj::serialize(o);
}

Expected<NamespaceConfig, std::string> namespace_config_from_json(std::string_view json) {
  boost::system::error_code ec;
  bj::value v = bj::parse(json, ec);
  if (ec || !v.is_object()) return unexpected(std::string("expected a JSON object"));
  NamespaceConfig c;
  for (const auto& [key, value] : v.get_object()) {
    if (value.is_null()) continue;
    if (key == "block_reads" && value.is_bool()) {
      c.block_reads = value.get_bool();
    } else if (key == "block_writes" && value.is_bool()) {
      c.block_writes = value.get_bool();
    } else if (key == "allow_attach" && value.is_bool()) {
      c.allow_attach = value.get_bool();
    } else if (key == "block_reason" && value.is_string()) {
      c.block_reason = std::string(value.get_string());
    } else if (key == "jwt_key" && value.is_string()) {
      c.jwt_key = std::string(value.get_string());
    } else if (key == "max_db_size" &&
               (value.is_uint64() || (value.is_int64() && value.get_int64() >= 0))) {
      c.max_db_size = value.to_number<std::uint64_t>();
    } else if (key == "txn_timeout_s" && value.is_number() && value.to_number<double>() > 0) {
      c.txn_timeout_s = value.to_number<double>();
    } else {
      return unexpected("invalid value for '" + std::string(key) + "'");
    }
  }
  return c;
}

bool NamespaceStore::valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

Expected<std::unique_ptr<NamespaceStore>, NamespaceError> NamespaceStore::open(Options options) {
  std::error_code ec;
  fs::create_directories(options.root, ec);
  if (ec) {
    return unexpected(
        error(NamespaceError::Kind::kIo, "cannot create " + options.root + ": " + ec.message()));
  }
  std::unique_ptr<NamespaceStore> store(new NamespaceStore(std::move(options)));
  // Leftovers of creates and deletes a crash interrupted.
  for (const auto& entry : fs::directory_iterator(store->options_.root, ec)) {
    if (entry.path().filename().string().starts_with(".")) fs::remove_all(entry.path(), ec);
  }
  if (store->options_.replica) {
    if (auto r = store->make_replica_dir(kDefault); !r) return unexpected(r.error());
    return store;
  }
  if (auto e = store->make_empty_database(); !e) return unexpected(e.error());
  if (!store->exists(kDefault)) {
    if (auto r = store->create(kDefault, NamespaceConfig{}); !r) return unexpected(r.error());
  }
  return store;
}

NamespaceStore::~NamespaceStore() { close_all(); }

Expected<void, NamespaceError> NamespaceStore::make_empty_database() {
  const fs::path scratch = fs::path(options_.root) / scratch_name("template", "empty");
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot create " + scratch.string() + ": " + ec.message()));
  const fs::path data = scratch / kDataFile;
  {
    auto conn = sqlite::Connection::open(data.string(), options_.database.open);
    if (!conn) {
      fs::remove_all(scratch, ec);
      return unexpected(error(NamespaceError::Kind::kSqlite,
                              "cannot create a database: " + conn.error().message));
    }
    (void)sqlite3_wal_checkpoint_v2((*conn)->handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                    nullptr);
  }
  std::ifstream in(data, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  empty_database_ = bytes.str();
  fs::remove_all(scratch, ec);
  if (empty_database_.empty()) {
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot read back an empty database from " + data.string()));
  }
  return {};
}

std::string NamespaceStore::dir_of(std::string_view name) const {
  return (fs::path(options_.root) / std::string(name)).string();
}

Expected<void, NamespaceError> NamespaceStore::publish(const fs::path& scratch,
                                                       std::string_view name) {
  // The scratch directory's entries first, then the rename that makes the namespace exist (it
  // refuses to replace one: of two creates of one name exactly one wins). The caller syncs the
  // root before acknowledging: only then is the new directory entry on disk.
  if (auto w = sync_path(scratch); !w) return w;
  if (auto r = rename_no_replace(scratch, dir_of(name)); !r) {
    if (r.error() == EEXIST || r.error() == ENOTEMPTY) return unexpected(already_exists(name));
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot create namespace: " + std::string(std::strerror(r.error()))));
  }
  return {};
}

std::string NamespaceStore::database_path(std::string_view name) const {
  return (fs::path(dir_of(name)) / kDataFile).string();
}

bool NamespaceStore::exists(std::string_view name) {
  if (!valid_name(name)) return false;
  std::error_code ec;
  if (!options_.replica) return fs::is_regular_file(fs::path(dir_of(name)) / kDataFile, ec);
  if (fs::is_regular_file(fs::path(dir_of(name)) / kConfigFile, ec)) return true;
  // A namespace this replica has not served yet: it exists when the primary has it.
  auto has = options_.replica->primary_has(std::string(name));
  return has && *has && make_replica_dir(name);
}

Expected<void, NamespaceError> NamespaceStore::make_replica_dir(std::string_view name) {
  const fs::path dir = dir_of(name);
  std::error_code ec;
  if (fs::is_regular_file(dir / kConfigFile, ec)) return {};
  fs::create_directories(dir, ec);
  if (ec) {
    return unexpected(
        error(NamespaceError::Kind::kIo, "cannot create " + dir.string() + ": " + ec.message()));
  }
  return write_file_atomically(dir / kConfigFile, to_json(NamespaceConfig{}));
}

Expected<void, NamespaceError> NamespaceStore::refuse_on_replica(std::string_view what) const {
  if (!options_.replica) return {};
  return unexpected(error(NamespaceError::Kind::kProtected,
                          "This server is " + options_.replica->describe() + ": " +
                              std::string(what) + " on the primary"));
}

std::size_t NamespaceStore::open_count() {
  std::lock_guard lock(mu_);
  return open_.size();
}

Expected<std::shared_ptr<Database>, NamespaceError> NamespaceStore::open_database(
    const std::string& name, const NamespaceConfig& config_value) {
  const NamespaceConfig* config = &config_value;
  DatabaseOptions options = options_.database;
  if (options_.replica) {
    auto db = options_.replica->open(name, (fs::path(dir_of(name)) / kDataFile).string(), options);
    if (!db) {
      return unexpected(error(NamespaceError::Kind::kIo,
                              "cannot open the replica of namespace '" + name + "': " + db.error()));
    }
    return db.value();
  }
  if (options_.replication_log) {
    options.log_dir = fs::path(dir_of(name)) / "log";
    if (options_.observe_commits) options.on_commit = options_.observe_commits(name);
  }
  if (config->txn_timeout_s) {
    options.transaction_timeout =
        std::chrono::milliseconds(static_cast<long long>(*config->txn_timeout_s * 1000));
  }
  if (config->max_db_size) {
    options.open.max_page_count =
        static_cast<std::int64_t>(std::max<std::uint64_t>(1, *config->max_db_size / 4096));
  }
  auto db = Database::open((fs::path(dir_of(name)) / kDataFile).string(), options);
  if (!db)
    return unexpected(error(NamespaceError::Kind::kSqlite,
                            "cannot open namespace '" + name + "': " + db.error().message));
  return db.value();
}

Expected<std::shared_ptr<Database>, NamespaceError> NamespaceStore::get(std::string_view name) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  const auto now = std::chrono::system_clock::now();
  std::string key(name);
  std::unique_lock lock(mu_);
  while (true) {
    if (auto it = open_.find(key); it != open_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      it->second.last_access = now;
      seen_[key] = now;
      return it->second.db;
    }
    // One Database per file at a time: wait while another request opens it, or while it is
    // being closed or deleted (two would recover the same log, or share a WAL they each think
    // is theirs).
    if (!busy_.count(key)) break;
    busy_cv_.wait(lock);
  }
  busy_.insert(key);
  lock.unlock();
  auto done = [&] {
    lock.lock();
    busy_.erase(key);
    busy_cv_.notify_all();
  };
  if (!exists(name)) {
    done();
    return unexpected(not_found(name));
  }
  auto config = read_config(dir_of(key));
  if (!config) {
    done();
    return unexpected(config.error());
  }
  auto shared_config = std::make_shared<const NamespaceConfig>(std::move(config.value()));
  auto opened = open_database(key, *shared_config);
  if (!opened) {
    done();
    return unexpected(opened.error());
  }
  std::shared_ptr<Database> db = std::move(opened.value());
  done();
  seen_[key] = now;
  lru_.push_front(key);
  open_.emplace(key, Open{db, shared_config, lru_.begin(), now});
  lock.unlock();
  evict();
  return db;
}

void NamespaceStore::close_busy(
    std::vector<std::pair<std::string, std::shared_ptr<Database>>> closing) {
  // Called without mu_; the names are in busy_.
  for (auto& [name, db] : closing) {
    db->close();
    const std::string path = db->path();
    std::weak_ptr<Database> gone = db;
    db.reset();
    if (gone.expired()) Database::remove_empty_wal(path);  // nobody else had it
    std::lock_guard lock(mu_);
    busy_.erase(name);
  }
  busy_cv_.notify_all();
}

void NamespaceStore::evict() {
  std::vector<std::pair<std::string, std::shared_ptr<Database>>> closing;
  {
    std::lock_guard lock(mu_);
    auto it = lru_.end();
    while (open_.size() > options_.max_open && it != lru_.begin()) {
      --it;
      auto found = open_.find(*it);
      // Only the store holds it: no lease, stream or request uses it.
      if (found->second.db.use_count() != 1) continue;
      busy_.insert(*it);
      closing.emplace_back(*it, std::move(found->second.db));
      open_.erase(found);
      it = lru_.erase(it);
    }
  }
  close_busy(std::move(closing));
}

Expected<void, NamespaceError> NamespaceStore::create(std::string_view name,
                                                      const NamespaceConfig& config,
                                                      const std::optional<std::string>& dump_sql) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (auto r = refuse_on_replica("create namespaces"); !r) return r;
  if (exists(name)) return unexpected(already_exists(name));
  std::optional<std::string> image;
  if (dump_sql) {
    auto built = database_from_dump(*dump_sql, options_.database.open);
    if (!built) return unexpected(built.error());
    image = std::move(built.value());
  }
  // Built in a scratch directory, then renamed into place: a namespace exists completely or not
  // at all, and two creates of one name race only at the rename, which refuses to replace.
  // Creates of different names run in parallel.
  const fs::path scratch = fs::path(options_.root) / scratch_name("create", name);
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot create " + scratch.string() + ": " + ec.message()));
  auto fail = [&](NamespaceError e) -> Expected<void, NamespaceError> {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    return unexpected(std::move(e));
  };
  // A namespace without config.json has the defaults: one file fewer to write and sync.
  if (to_json(config) != to_json(NamespaceConfig{})) {
    if (auto w = write_file_synced(scratch / kConfigFile, to_json(config)); !w)
      return fail(w.error());
  }
  const fs::path data = scratch / kDataFile;
  // An empty database is the same 4096 bytes every time; a dump is built in memory. Either way
  // the file is written once and synced once (no -wal, -shm or journal on the way).
  if (auto w = write_file_synced(data, dump_sql ? *image : empty_database_); !w)
    return fail(w.error());
  if (options_.replication_log) {
    // The log starts with the new file as its base image, written now so that the first query
    // does not pay for it.
    if (auto l = create_log(scratch / "log", data); !l) return fail(l.error());
  }
  if (auto p = publish(scratch, name); !p) return fail(p.error());
  if (auto w = sync_path(options_.root); !w) return unexpected(w.error());
  return {};
}

Expected<void, NamespaceError> NamespaceStore::remove(std::string_view name) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (name == kDefault) {
    return unexpected(
        error(NamespaceError::Kind::kProtected, "The default namespace cannot be deleted"));
  }
  if (auto r = refuse_on_replica("delete namespaces"); !r) return r;
  std::lock_guard create_lock(create_mu_);
  if (!exists(name)) return unexpected(not_found(name));
  const std::string key(name);
  std::shared_ptr<Database> db;
  {
    std::unique_lock lock(mu_);
    busy_cv_.wait(lock, [&] { return !busy_.count(key); });
    busy_.insert(key);  // no request opens it while it goes
    if (auto it = open_.find(key); it != open_.end()) {
      db = std::move(it->second.db);
      lru_.erase(it->second.lru);
      open_.erase(it);
    }
    seen_.erase(key);
  }
  struct Unbusy {
    NamespaceStore& store;
    const std::string& key;
    ~Unbusy() {
      {
        std::lock_guard lock(store.mu_);
        store.busy_.erase(key);
      }
      store.busy_cv_.notify_all();
    }
  } unbusy{*this, key};
  // Move it aside first: from here on it does not exist, even if deleting the files takes long.
  const fs::path grave = fs::path(options_.root) / scratch_name("deleted", name);
  std::error_code ec;
  fs::rename(dir_of(name), grave, ec);
  if (ec)
    return unexpected(error(NamespaceError::Kind::kIo, "cannot delete namespace: " + ec.message()));
  if (db) db->close();
  db.reset();
  fs::remove_all(grave, ec);
  return {};
}

Expected<void, NamespaceError> NamespaceStore::fork(std::string_view from, std::string_view to) {
  if (!valid_name(from)) return unexpected(invalid_name(from));
  if (!valid_name(to)) return unexpected(invalid_name(to));
  if (auto r = refuse_on_replica("fork namespaces"); !r) return r;
  auto source = get(from);
  if (!source) return unexpected(source.error());
  auto config = read_config(dir_of(from));
  if (!config) return unexpected(config.error());
  if (exists(to)) return unexpected(already_exists(to));
  const fs::path scratch = fs::path(options_.root) / scratch_name("fork", to);
  std::error_code ec;
  fs::create_directories(scratch, ec);
  auto fail = [&](NamespaceError e) -> Expected<void, NamespaceError> {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    return unexpected(std::move(e));
  };
  if (ec)
    return fail(error(NamespaceError::Kind::kIo,
                      "cannot create " + scratch.string() + ": " + ec.message()));
  if (auto w = write_file_synced(scratch / kConfigFile, to_json(*config)); !w)
    return fail(w.error());
  {
    // VACUUM INTO reads one snapshot of the source: its writers go on meanwhile.
    auto lease = (*source)->acquire();
    if (!lease) return fail(error(NamespaceError::Kind::kSqlite, lease.error().message));
    (*lease)->set_access({.read_only = false,
                          .read_only_why = {},
                          .allow_attach = true,
                          .attach = nullptr});  // VACUUM INTO attaches its target
    std::string target = (scratch / kDataFile).string();
    std::string quoted;
    for (char c : target) {
      quoted += c;
      if (c == '\'') quoted += '\'';
    }
    const std::string sql = "VACUUM INTO '" + quoted + "'";
    if (auto r = (*lease)->exec(sql.c_str()); !r) {
      return fail(
          error(NamespaceError::Kind::kSqlite, "cannot copy the database: " + r.error().message));
    }
  }
  if (auto w = sync_path(scratch / kDataFile); !w) return fail(w.error());
  if (auto p = publish(scratch, to); !p) return fail(p.error());
  if (auto w = sync_path(options_.root); !w) return unexpected(w.error());
  return {};
}

namespace {

// Moves `from` to `to` (same file system: a rename; otherwise a copy, synced, then the source
// removed) and marks the database as WAL mode in its header (bytes 18 and 19), as SQLite would
// when switching a database with no -wal.
Expected<void, NamespaceError> move_database_file(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec == std::errc::cross_device_link) {
    ec.clear();
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::remove(from, ec);
  }
  if (ec) {
    return unexpected(error(NamespaceError::Kind::kIo, "cannot move " + from.string() + " to " +
                                                           to.string() + ": " + ec.message()));
  }
  std::fstream f(to, std::ios::in | std::ios::out | std::ios::binary);
  char header[20] = {};
  if (!f.read(header, sizeof header) ||
      std::string_view(header, 16) != std::string_view("SQLite format 3\0", 16)) {
    return unexpected(
        error(NamespaceError::Kind::kIo, to.string() + " is not an SQLite database file"));
  }
  if (header[18] != 2 || header[19] != 2) {
    const char wal[2] = {2, 2};
    f.seekp(18);
    f.write(wal, 2);
    f.flush();
    if (!f) {
      return unexpected(error(NamespaceError::Kind::kIo, "cannot write " + to.string()));
    }
  }
  f.close();
  return sync_path(to);
}

}  // namespace

fs::path NamespaceStore::scratch_path(std::string_view purpose, std::string_view name) const {
  return fs::path(options_.root) / scratch_name(purpose, name);
}

Expected<void, NamespaceError> NamespaceStore::adopt(std::string_view name, const fs::path& db_file,
                                                     const NamespaceConfig& config) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (auto r = refuse_on_replica("create namespaces"); !r) return r;
  if (exists(name)) return unexpected(already_exists(name));
  const fs::path scratch = fs::path(options_.root) / scratch_name("adopt", name);
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec)
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot create " + scratch.string() + ": " + ec.message()));
  auto fail = [&](NamespaceError e) -> Expected<void, NamespaceError> {
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    return unexpected(std::move(e));
  };
  if (to_json(config) != to_json(NamespaceConfig{})) {
    if (auto w = write_file_synced(scratch / kConfigFile, to_json(config)); !w)
      return fail(w.error());
  }
  const fs::path data = scratch / kDataFile;
  if (auto m = move_database_file(db_file, data); !m) return fail(m.error());
  if (options_.replication_log) {
    if (auto l = create_log(scratch / "log", data); !l) return fail(l.error());
  }
  if (auto p = publish(scratch, name); !p) return fail(p.error());
  if (auto w = sync_path(options_.root); !w) return unexpected(w.error());
  return {};
}

Expected<void, NamespaceError> NamespaceStore::replace(std::string_view name,
                                                       const fs::path& db_file) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (auto r = refuse_on_replica("restore namespaces"); !r) return r;
  std::lock_guard create_lock(create_mu_);
  if (!exists(name)) return unexpected(not_found(name));
  const std::string key(name);
  std::shared_ptr<Database> db;
  {
    std::unique_lock lock(mu_);
    busy_cv_.wait(lock, [&] { return !busy_.count(key); });
    busy_.insert(key);  // requests for it wait until the new database is in place
    if (auto it = open_.find(key); it != open_.end()) {
      db = std::move(it->second.db);
      lru_.erase(it->second.lru);
      open_.erase(it);
    }
  }
  struct Unbusy {
    NamespaceStore& store;
    const std::string& key;
    ~Unbusy() {
      {
        std::lock_guard lock(store.mu_);
        store.busy_.erase(key);
      }
      store.busy_cv_.notify_all();
    }
  } unbusy{*this, key};
  // Closing checkpoints the WAL (TRUNCATE): the old files are a complete database from here on,
  // so a crash at any step below leaves either the old database or the new one, whole.
  if (db) db->close();
  db.reset();
  const fs::path dir = dir_of(name);
  const fs::path incoming = dir / (std::string(kDataFile) + ".restoring");
  if (auto m = move_database_file(db_file, incoming); !m) return unexpected(m.error());
  const fs::path grave = fs::path(options_.root) / scratch_name("replaced", name);
  std::error_code ec;
  fs::create_directories(grave, ec);
  for (const char* f : {"log", "data-wal", "data-shm"}) {
    if (ec) break;
    if (fs::exists(dir / f)) fs::rename(dir / f, grave / f, ec);
  }
  if (!ec) fs::rename(incoming, dir / kDataFile, ec);
  if (ec) {
    return unexpected(error(NamespaceError::Kind::kIo,
                            "cannot replace the database of namespace '" + key + "': " + ec.message()));
  }
  if (auto w = sync_path(dir); !w) return unexpected(w.error());
  if (options_.replication_log) {
    if (auto l = create_log(dir / "log", dir / kDataFile); !l) return unexpected(l.error());
  }
  fs::remove_all(grave, ec);
  return {};
}

std::vector<NamespaceInfo> NamespaceStore::list() {
  std::vector<NamespaceInfo> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(options_.root, ec)) {
    const std::string name = entry.path().filename().string();
    if (!valid_name(name) || !exists(name)) continue;
    NamespaceInfo info;
    info.name = name;
    info.size_bytes = file_size_or_zero(entry.path() / kDataFile) +
                      file_size_or_zero(entry.path() / (std::string(kDataFile) + "-wal"));
    out.push_back(std::move(info));
  }
  {
    std::lock_guard lock(mu_);
    for (auto& info : out) {
      if (auto it = seen_.find(info.name); it != seen_.end()) info.last_access = it->second;
      info.open = open_.count(info.name) > 0;
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Expected<NamespaceConfig, NamespaceError> NamespaceStore::config(std::string_view name) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (!exists(name)) return unexpected(not_found(name));
  return read_config(dir_of(name));
}

Expected<std::shared_ptr<const NamespaceConfig>, NamespaceError> NamespaceStore::cached_config(
    std::string_view name) {
  {
    std::lock_guard lock(mu_);
    if (auto it = open_.find(std::string(name)); it != open_.end()) return it->second.config;
  }
  auto config = this->config(name);
  if (!config) return unexpected(config.error());
  return std::make_shared<const NamespaceConfig>(std::move(config.value()));
}

Expected<void, NamespaceError> NamespaceStore::set_config(std::string_view name,
                                                          const NamespaceConfig& config) {
  if (!valid_name(name)) return unexpected(invalid_name(name));
  if (auto r = refuse_on_replica("change a namespace's configuration"); !r) return r;
  std::lock_guard create_lock(create_mu_);
  if (!exists(name)) return unexpected(not_found(name));
  if (auto w = write_file_atomically(fs::path(dir_of(name)) / kConfigFile, to_json(config)); !w) {
    return unexpected(w.error());
  }
  // Size and timeout limits are set when a database opens: close it if nobody uses it.
  std::vector<std::pair<std::string, std::shared_ptr<Database>>> closing;
  {
    std::lock_guard lock(mu_);
    if (auto it = open_.find(std::string(name)); it != open_.end()) {
      it->second.config = std::make_shared<const NamespaceConfig>(config);
      if (it->second.db.use_count() == 1) {
        busy_.insert(it->first);
        closing.emplace_back(it->first, std::move(it->second.db));
        lru_.erase(it->second.lru);
        open_.erase(it);
      }
    }
  }
  close_busy(std::move(closing));
  return {};
}

void NamespaceStore::close_all() {
  std::vector<std::shared_ptr<Database>> closing;
  {
    std::lock_guard lock(mu_);
    for (auto& [name, open] : open_) closing.push_back(std::move(open.db));
    open_.clear();
    lru_.clear();
  }
  for (auto& db : closing) db->close();
}

}  // namespace quire::engine
