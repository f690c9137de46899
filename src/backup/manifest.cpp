// Manifest and lineage-list JSON (docs/formats/backup.md, "Manifest").
#include <boost/json.hpp>

#include <iterator>

#include "backup/backup.h"
#include "backup/object_format.h"

namespace quire::backup {

namespace json = boost::json;
using detail::error;
using detail::storage_failure;

namespace {

json::object batch_to_json(const BatchEntry& b) {
  return json::object{{"key", b.key},
                      {"first_frame", b.first_frame},
                      {"last_frame", b.last_frame},
                      {"first_commit_frame", b.first_commit_frame},
                      {"first_commit_time_us", b.first_commit_time_us},
                      {"last_commit_time_us", b.last_commit_time_us},
                      {"txns", b.txns},
                      {"db_size", b.db_size},
                      {"size", b.size},
                      {"sha256", b.sha256}};
}

json::object index_entry_to_json(const IndexEntry& i) {
  return json::object{{"key", i.key},
                      {"level", i.level},
                      {"first_frame", i.first_frame},
                      {"last_frame", i.last_frame},
                      {"first_commit_frame", i.first_commit_frame},
                      {"first_commit_time_us", i.first_commit_time_us},
                      {"last_commit_time_us", i.last_commit_time_us},
                      {"batches", i.batches},
                      {"txns", i.txns},
                      {"db_size", i.db_size},
                      {"batch_bytes", i.batch_bytes},
                      {"size", i.size},
                      {"sha256", i.sha256}};
}

}  // namespace

std::string manifest_to_json(const Manifest& m) {
  json::object o;
  o["format"] = "quire-backup-manifest";
  // Version 2 has index objects; a manifest without is written as version 1, which earlier
  // readers also read (they refuse version 2 rather than miss the sealed batches).
  o["version"] = m.indexes.empty() ? 1 : 2;
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
  if (!m.indexes.empty()) {
    json::array indexes;
    for (const auto& i : m.indexes) indexes.push_back(index_entry_to_json(i));
    o["indexes"] = std::move(indexes);
  }
  json::array batches;
  for (const auto& b : m.batches) batches.push_back(batch_to_json(b));
  o["batches"] = std::move(batches);
  return json::serialize(o);
}

std::string index_to_json(const log::LogId& log_id, std::span<const BatchEntry> batches) {
  json::array a;
  for (const auto& b : batches) a.push_back(batch_to_json(b));
  return json::serialize(json::object{{"format", "quire-backup-index"},
                                      {"version", 1},
                                      {"log_id", log::format_log_id(log_id)},
                                      {"level", 1},
                                      {"batches", std::move(a)}});
}

std::string index_to_json(const log::LogId& log_id, std::uint32_t level,
                          std::span<const IndexEntry> entries) {
  json::array a;
  for (const auto& i : entries) a.push_back(index_entry_to_json(i));
  return json::serialize(json::object{{"format", "quire-backup-index"},
                                      {"version", 1},
                                      {"log_id", log::format_log_id(log_id)},
                                      {"level", level},
                                      {"indexes", std::move(a)}});
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

// Throws on an invalid entry; `prev` is the entry before it in the same list, if any.
BatchEntry batch_from_json(const json::value& e, const BatchEntry* prev) {
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
      x.first_commit_frame < x.first_frame || x.first_commit_frame > x.last_frame || x.txns == 0 ||
      storage::validate_key(x.key))
    throw std::runtime_error("bad batch entry " + x.key);
  if (prev != nullptr && prev->first_frame >= x.first_frame)
    throw std::runtime_error("batches out of order");
  return x;
}

// Throws on an invalid entry; `prev` is the entry before it in the same list, if any.
IndexEntry index_entry_from_json(const json::value& e, const IndexEntry* prev) {
  const auto& i = e.as_object();
  IndexEntry x;
  x.key = str(i, "key");
  x.level = i.contains("level") ? static_cast<std::uint32_t>(u64(i, "level")) : 1;
  x.first_frame = u64(i, "first_frame");
  x.last_frame = u64(i, "last_frame");
  x.first_commit_frame = u64(i, "first_commit_frame");
  x.first_commit_time_us = i64(i, "first_commit_time_us");
  x.last_commit_time_us = i64(i, "last_commit_time_us");
  x.batches = u64(i, "batches");
  x.txns = u64(i, "txns");
  x.db_size = static_cast<std::uint32_t>(u64(i, "db_size"));
  x.batch_bytes = u64(i, "batch_bytes");
  x.size = u64(i, "size");
  x.sha256 = str(i, "sha256");
  if (!valid_sha(x.sha256) || x.level == 0 || x.level > 8 || x.first_frame == 0 ||
      x.last_frame < x.first_frame || x.first_commit_frame < x.first_frame ||
      x.first_commit_frame > x.last_frame || x.batches == 0 || x.txns < x.batches ||
      storage::validate_key(x.key))
    throw std::runtime_error("bad index entry " + x.key);
  if (prev != nullptr && prev->last_frame >= x.first_frame)
    throw std::runtime_error("indexes out of order");
  return x;
}

// The header fields of an index object; throws unless it is one of `log_id`'s of `level`.
const json::object& index_object(const json::value& v, const log::LogId& log_id,
                                 std::uint32_t level) {
  const auto& o = v.as_object();
  if (str(o, "format") != "quire-backup-index") throw std::runtime_error("not an index");
  if (u64(o, "version") != 1) throw std::runtime_error("unsupported version");
  auto id = log::parse_log_id(str(o, "log_id"));
  if (!id || *id != log_id) throw std::runtime_error("names another log id");
  const std::uint64_t got = o.contains("level") ? u64(o, "level") : 1;
  if (got != level) throw std::runtime_error("is of level " + std::to_string(got));
  return o;
}

// Throws unless `v` (the entries an index lists, in order) is contiguous and sums to `entry`.
template <typename Entry>
void check_listed(const std::vector<Entry>& v, const IndexEntry& entry) {
  if (v.empty()) throw std::runtime_error("it lists nothing");
  for (std::size_t k = 1; k < v.size(); ++k)
    if (v[k].first_frame != v[k - 1].last_frame + 1 ||
        v[k].first_commit_time_us < v[k - 1].last_commit_time_us)
      throw std::runtime_error("its entries are not contiguous");
  const IndexEntry s = detail::summarise_index(std::span<const Entry>(v));
  if (s.level != entry.level || s.batches != entry.batches || s.txns != entry.txns ||
      s.batch_bytes != entry.batch_bytes || s.first_frame != entry.first_frame ||
      s.first_commit_frame != entry.first_commit_frame ||
      s.first_commit_time_us != entry.first_commit_time_us || s.last_frame != entry.last_frame ||
      s.last_commit_time_us != entry.last_commit_time_us || s.db_size != entry.db_size)
    throw std::runtime_error("its entries disagree with the entry naming it");
}

}  // namespace

BackupResult<Manifest> manifest_from_json(std::string_view text, const std::string& what) {
  Manifest m;
  try {
    json::value v = json::parse(text);
    const auto& o = v.as_object();
    if (str(o, "format") != "quire-backup-manifest") throw std::runtime_error("not a manifest");
    const auto version = u64(o, "version");
    if (version != 1 && version != 2) throw std::runtime_error("unsupported version");
    auto id = log::parse_log_id(str(o, "log_id"));
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
    if (version == 2) {
      for (const auto& e : o.at("indexes").as_array())
        m.indexes.push_back(
            index_entry_from_json(e, m.indexes.empty() ? nullptr : &m.indexes.back()));
    } else if (o.contains("indexes")) {
      throw std::runtime_error("a version-1 manifest has no indexes");
    }
    for (const auto& e : o.at("batches").as_array()) {
      m.batches.push_back(batch_from_json(e, m.batches.empty() ? nullptr : &m.batches.back()));
      if (m.batches.size() == 1 && !m.indexes.empty() &&
          m.indexes.back().last_frame >= m.batches.front().first_frame)
        throw std::runtime_error("batches overlap the indexes");
    }
  } catch (const std::exception& e) {
    return unexpected(error(BackupErrc::kCorrupt, what + ": invalid manifest: " + e.what()));
  }
  return m;
}

BackupResult<std::vector<BatchEntry>> index_from_json(std::string_view text,
                                                      const log::LogId& log_id,
                                                      const IndexEntry& entry,
                                                      const std::string& what) {
  std::vector<BatchEntry> out;
  try {
    const json::value v = json::parse(text);
    const auto& o = index_object(v, log_id, 1);
    for (const auto& e : o.at("batches").as_array())
      out.push_back(batch_from_json(e, out.empty() ? nullptr : &out.back()));
    check_listed(out, entry);
  } catch (const std::exception& e) {
    return unexpected(error(BackupErrc::kCorrupt, what + ": invalid index: " + e.what()));
  }
  return out;
}

BackupResult<std::vector<IndexEntry>> index_entries_from_json(std::string_view text,
                                                              const log::LogId& log_id,
                                                              const IndexEntry& entry,
                                                              const std::string& what) {
  std::vector<IndexEntry> out;
  try {
    if (entry.level < 2) throw std::runtime_error("a level-1 index lists batches");
    const json::value v = json::parse(text);
    const auto& o = index_object(v, log_id, entry.level);
    for (const auto& e : o.at("indexes").as_array()) {
      out.push_back(index_entry_from_json(e, out.empty() ? nullptr : &out.back()));
      if (out.back().level != entry.level - 1)
        throw std::runtime_error("lists an index of level " + std::to_string(out.back().level));
    }
    check_listed(out, entry);
  } catch (const std::exception& e) {
    return unexpected(error(BackupErrc::kCorrupt, what + ": invalid index: " + e.what()));
  }
  return out;
}

namespace {

// The index object's bytes, checked against the entry that names it.
BackupResult<std::string> fetch_index(storage::ObjectStore& store, const std::string& key,
                                      const IndexEntry& entry) {
  auto got = store.get(key);
  if (!got) return unexpected(storage_failure("index " + key, got.error()));
  detail::Sha256 sha;
  sha.update(got->data(), got->size());
  const auto digest = sha.finish();
  if (got->size() != entry.size || detail::to_hex(digest.data(), digest.size()) != entry.sha256)
    return unexpected(error(BackupErrc::kCorrupt, key + ": SHA-256 does not match the manifest"));
  return std::move(*got);
}

}  // namespace

BackupResult<std::vector<BatchEntry>> read_index(storage::ObjectStore& store,
                                                 const std::string& dir, const log::LogId& log_id,
                                                 const IndexEntry& entry) {
  const std::string key = dir + entry.key;
  auto got = fetch_index(store, key, entry);
  if (!got) return unexpected(std::move(got).error());
  return index_from_json(*got, log_id, entry, key);
}

BackupResult<std::vector<IndexEntry>> read_index_entries(storage::ObjectStore& store,
                                                         const std::string& dir,
                                                         const log::LogId& log_id,
                                                         const IndexEntry& entry) {
  const std::string key = dir + entry.key;
  auto got = fetch_index(store, key, entry);
  if (!got) return unexpected(std::move(got).error());
  return index_entries_from_json(*got, log_id, entry, key);
}

BackupResult<std::vector<BatchEntry>> read_index_batches(storage::ObjectStore& store,
                                                         const std::string& dir,
                                                         const log::LogId& log_id,
                                                         const IndexEntry& entry) {
  if (entry.level <= 1) return read_index(store, dir, log_id, entry);
  auto entries = read_index_entries(store, dir, log_id, entry);
  if (!entries) return unexpected(std::move(entries).error());
  std::vector<BatchEntry> out;
  for (const auto& e : *entries) {
    auto below = read_index_batches(store, dir, log_id, e);
    if (!below) return unexpected(std::move(below).error());
    std::move(below->begin(), below->end(), std::back_inserter(out));
  }
  return out;
}

}  // namespace quire::backup

namespace quire::backup::detail {

namespace {

template <typename Entry, typename Add>
IndexEntry summarise(std::span<const Entry> run, std::uint32_t level, Add add) {
  IndexEntry e;
  e.level = level;
  e.first_frame = run.front().first_frame;
  e.last_frame = run.back().last_frame;
  e.first_commit_frame = run.front().first_commit_frame;
  e.first_commit_time_us = run.front().first_commit_time_us;
  e.last_commit_time_us = run.back().last_commit_time_us;
  e.db_size = run.back().db_size;
  for (const auto& x : run) add(e, x);
  return e;
}

}  // namespace

IndexEntry summarise_index(std::span<const BatchEntry> run) {
  return summarise(run, 1, [](IndexEntry& e, const BatchEntry& b) {
    ++e.batches;
    e.txns += b.txns;
    e.batch_bytes += b.size;
  });
}

IndexEntry summarise_index(std::span<const IndexEntry> run) {
  return summarise(run, run.front().level + 1, [](IndexEntry& e, const IndexEntry& i) {
    e.batches += i.batches;
    e.txns += i.txns;
    e.batch_bytes += i.batch_bytes;
  });
}

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
      auto id = log::parse_log_id(str(l, "log_id"));
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
