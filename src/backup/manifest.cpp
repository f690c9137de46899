// Manifest and lineage-list JSON (docs/formats/backup.md, "Manifest").
#include <boost/json.hpp>

#include "backup/backup.h"
#include "backup/object_format.h"

namespace quire::backup {

namespace json = boost::json;
using detail::error;

std::string manifest_to_json(const Manifest& m) {
  json::object o;
  o["format"] = "quire-backup-manifest";
  o["version"] = 1;
  o["log_id"] = log::format_log_id(m.log_id);
  json::array snaps;
  for (const auto& s : m.snapshots) {
    snaps.push_back(json::object{{"key", s.key},
                                 {"frame", s.frame},
                                 {"db_size", s.db_size},
                                 {"commit_time_us", s.commit_time_us},
                                 {"size", s.size},
                                 {"sha256", s.sha256}});
  }
  o["snapshots"] = std::move(snaps);
  json::array batches;
  for (const auto& b : m.batches) {
    batches.push_back(json::object{{"key", b.key},
                                   {"first_frame", b.first_frame},
                                   {"last_frame", b.last_frame},
                                   {"first_commit_frame", b.first_commit_frame},
                                   {"first_commit_time_us", b.first_commit_time_us},
                                   {"last_commit_time_us", b.last_commit_time_us},
                                   {"txns", b.txns},
                                   {"db_size", b.db_size},
                                   {"size", b.size},
                                   {"sha256", b.sha256}});
  }
  o["batches"] = std::move(batches);
  return json::serialize(o);
}

namespace {

// Throws std::exception (caught by the caller) on a missing or mistyped field.
std::uint64_t u64(const json::object& o, const char* k) { return o.at(k).to_number<std::uint64_t>(); }
std::int64_t i64(const json::object& o, const char* k) { return o.at(k).to_number<std::int64_t>(); }
std::string str(const json::object& o, const char* k) { return std::string(o.at(k).as_string()); }

bool valid_sha(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

BackupResult<Manifest> manifest_from_json(std::string_view text, const std::string& what) {
  Manifest m;
  try {
    json::value v = json::parse(text);
    const auto& o = v.as_object();
    if (str(o, "format") != "quire-backup-manifest") throw std::runtime_error("not a manifest");
    if (u64(o, "version") != 1) throw std::runtime_error("unsupported version");
    auto id = detail::parse_log_id(str(o, "log_id"));
    if (!id) throw std::runtime_error("bad log_id");
    m.log_id = *id;
    for (const auto& e : o.at("snapshots").as_array()) {
      const auto& s = e.as_object();
      SnapshotEntry x;
      x.key = str(s, "key");
      x.frame = u64(s, "frame");
      x.db_size = static_cast<std::uint32_t>(u64(s, "db_size"));
      x.commit_time_us = i64(s, "commit_time_us");
      x.size = u64(s, "size");
      x.sha256 = str(s, "sha256");
      if (!valid_sha(x.sha256) || x.frame == 0 || storage::validate_key(x.key))
        throw std::runtime_error("bad snapshot entry " + x.key);
      if (!m.snapshots.empty() && m.snapshots.back().frame >= x.frame)
        throw std::runtime_error("snapshots out of order");
      m.snapshots.push_back(std::move(x));
    }
    for (const auto& e : o.at("batches").as_array()) {
      const auto& b = e.as_object();
      BatchEntry x;
      x.key = str(b, "key");
      x.first_frame = u64(b, "first_frame");
      x.last_frame = u64(b, "last_frame");
      x.first_commit_frame = u64(b, "first_commit_frame");
      x.first_commit_time_us = i64(b, "first_commit_time_us");
      x.last_commit_time_us = i64(b, "last_commit_time_us");
      x.txns = static_cast<std::uint32_t>(u64(b, "txns"));
      x.db_size = static_cast<std::uint32_t>(u64(b, "db_size"));
      x.size = u64(b, "size");
      x.sha256 = str(b, "sha256");
      if (!valid_sha(x.sha256) || x.first_frame == 0 || x.last_frame < x.first_frame ||
          x.first_commit_frame < x.first_frame || x.first_commit_frame > x.last_frame ||
          x.txns == 0 || storage::validate_key(x.key))
        throw std::runtime_error("bad batch entry " + x.key);
      if (!m.batches.empty() && m.batches.back().first_frame >= x.first_frame)
        throw std::runtime_error("batches out of order");
      m.batches.push_back(std::move(x));
    }
  } catch (const std::exception& e) {
    return unexpected(error(BackupErrc::kCorrupt, what + ": invalid manifest: " + e.what()));
  }
  return m;
}

}  // namespace quire::backup

namespace quire::backup::detail {

std::string lineages_key(const std::string& prefix) { return prefix + "lineages.json"; }
std::string lineage_dir(const std::string& prefix, const log::LogId& id) {
  return prefix + log::format_log_id(id) + "/";
}
std::string manifest_key(const std::string& prefix, const log::LogId& id) {
  return lineage_dir(prefix, id) + "manifest.json";
}

std::string lineages_to_json(const std::vector<LineageEntry>& v) {
  json::array a;
  for (const auto& l : v)
    a.push_back(json::object{{"log_id", log::format_log_id(l.log_id)},
                             {"created_at_us", l.created_at_us}});
  return json::serialize(json::object{
      {"format", "quire-backup-lineages"}, {"version", 1}, {"lineages", std::move(a)}});
}

BackupResult<std::optional<std::vector<LineageEntry>>> read_lineages(storage::ObjectStore& store,
                                                                     const std::string& prefix) {
  const std::string key = lineages_key(prefix);
  auto got = store.get(key);
  if (!got) {
    if (got.error().kind == storage::StorageErrc::kNotFound)
      return std::optional<std::vector<LineageEntry>>{};
    return unexpected(storage_failure("reading " + key, got.error()));
  }
  std::vector<LineageEntry> out;
  try {
    json::value v = json::parse(*got);
    const auto& o = v.as_object();
    if (str(o, "format") != "quire-backup-lineages" || u64(o, "version") != 1)
      throw std::runtime_error("not a version-1 lineage list");
    for (const auto& e : o.at("lineages").as_array()) {
      const auto& l = e.as_object();
      auto id = parse_log_id(str(l, "log_id"));
      if (!id) throw std::runtime_error("bad log_id");
      out.push_back({*id, i64(l, "created_at_us")});
    }
  } catch (const std::exception& e) {
    return unexpected(error(BackupErrc::kCorrupt, key + ": invalid lineage list: " + e.what()));
  }
  return std::optional<std::vector<LineageEntry>>(std::move(out));
}

BackupResult<std::string> normalize_prefix(std::string prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.empty()) return prefix;
  if (auto e = storage::validate_key(prefix))
    return unexpected(error(BackupErrc::kInvalidArgument, "bad backup prefix: " + e->message));
  return prefix + "/";
}

}  // namespace quire::backup::detail
