// apply_retention() (docs/formats/backup.md, "Retention"): plan from the manifests, rewrite the
// manifests and lineages.json, and only then delete objects, so that every manifest names only
// objects that exist at every instant.
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "backup/backup.h"
#include "backup/object_format.h"

namespace quire::backup {

using detail::error;
using detail::storage_failure;

namespace {

struct Doomed {
  std::string key;  // full store key
  std::uint64_t size = 0;
};

// Prunes `m` in place for cutoff `t`: the snapshots older than the newest snapshot committed at or
// before t and the batches that end at or before that snapshot, sealed ones with their index
// (whose object is read for their keys). Appends what goes to `doomed`.
BackupResult<void> prune(storage::ObjectStore& store, Manifest& m, std::int64_t t,
                         const std::string& dir, std::vector<Doomed>& doomed,
                         RetentionResult& res) {
  const SnapshotEntry* base = nullptr;
  for (const auto& s : m.snapshots)
    if (s.commit_time_us <= t) base = &s;
  if (base == nullptr) return {};  // nothing restorable at t comes from a snapshot: keep everything
  const log::Frame frame = base->frame;
  // An index goes with everything under it: its objects are read for their keys.
  std::function<BackupResult<void>(const IndexEntry&)> doom = [&](const IndexEntry& i)
      -> BackupResult<void> {
    if (i.level <= 1) {
      auto listed = read_index(store, dir, m.log_id, i);
      if (!listed) return unexpected(std::move(listed).error());
      for (const auto& b : *listed) doomed.push_back({dir + b.key, b.size});
    } else {
      auto listed = read_index_entries(store, dir, m.log_id, i);
      if (!listed) return unexpected(std::move(listed).error());
      for (const auto& e : *listed)
        if (auto r = doom(e); !r) return r;
    }
    doomed.push_back({dir + i.key, i.size});
    return {};
  };
  std::size_t sealed = 0;
  for (; sealed < m.indexes.size() && m.indexes[sealed].last_frame <= frame; ++sealed) {
    if (auto r = doom(m.indexes[sealed]); !r) return r;
    res.batches_deleted += static_cast<std::size_t>(m.indexes[sealed].batches);
  }
  m.indexes.erase(m.indexes.begin(), m.indexes.begin() + static_cast<std::ptrdiff_t>(sealed));
  std::erase_if(m.snapshots, [&](const SnapshotEntry& s) {
    if (s.frame >= frame) return false;
    doomed.push_back({dir + s.key, s.size});
    ++res.snapshots_deleted;
    return true;
  });
  std::erase_if(m.batches, [&](const BatchEntry& b) {
    if (b.last_frame > frame) return false;
    doomed.push_back({dir + b.key, b.size});
    ++res.batches_deleted;
    return true;
  });
  return {};
}

// The newest commit time a lineage holds; nullopt when it holds nothing.
std::optional<std::int64_t> last_commit_time(const Manifest& m) {
  std::optional<std::int64_t> t;
  for (const auto& s : m.snapshots) t = std::max(t.value_or(s.commit_time_us), s.commit_time_us);
  if (auto e = m.batch_extent())
    t = std::max(t.value_or(e->last_commit_time_us), e->last_commit_time_us);
  return t;
}

struct Lineage {
  detail::LineageEntry entry;
  Manifest manifest;
  std::uint64_t manifest_bytes = 0;
  bool current = false;
  bool drop = false;
  bool pruned = false;
  bool folded = false;  // its tail was appended to `manifest`: rewrite it
};

}  // namespace

BackupResult<RetentionResult> apply_retention(BackupWriter& writer, std::int64_t keep_after_us,
                                              const RetentionOptions& options) {
  storage::ObjectStore& store = writer.store_;
  const std::string& prefix = writer.prefix_;
  const log::LogId current_id = writer.manifest_.log_id;
  RetentionResult res;
  // A lineage with content whose registration failed is registered first, so that dropping the
  // lineage readers now see as current never leaves them with none.
  if (!writer.manifest_.snapshots.empty() || writer.manifest_.batch_extent())
    if (auto r = writer.register_lineage(); !r) return unexpected(std::move(r.error()));

  // 1. Every lineage, oldest first, as readers see them (plus the current one if it is not
  //    registered yet: it will be the newest once it is).
  auto listed = detail::read_lineages(store, prefix);
  if (!listed) return unexpected(std::move(listed).error());
  const std::vector<detail::LineageEntry> entries =
      listed->value_or(std::vector<detail::LineageEntry>{});
  std::vector<Lineage> lineages;
  for (const auto& e : entries) {
    if (e.log_id == current_id) continue;  // placed last below
    Lineage l;
    l.entry = e;
    const std::string key = detail::manifest_key(prefix, e.log_id);
    auto got = store.get(key);
    if (!got) return unexpected(storage_failure("manifest " + key, got.error()));
    auto m = manifest_from_json(*got, key);
    if (!m) return unexpected(std::move(m).error());
    if (m->log_id != e.log_id) return unexpected(error(BackupErrc::kCorrupt, key + ": names another log id"));
    l.manifest = std::move(*m);
    l.manifest_bytes = got->size();
    // Its tail (it was current when its writer stopped): its commits count for the plan, and
    // the manifest is rewritten with them (folded in, since no writer will do it). A broken tail
    // stops retention: how far the lineage reaches is unknown.
    auto tail = detail::follow_tail(store, detail::lineage_dir(prefix, e.log_id), l.manifest,
                                    detail::TailRead::kWhole);
    if (!tail) return unexpected(std::move(tail).error());
    if (tail->broken) return unexpected(std::move(*tail->broken));
    l.folded = tail->appended > 0;
    lineages.push_back(std::move(l));
  }
  Lineage cur;
  cur.entry.log_id = current_id;
  cur.manifest = writer.manifest_;
  cur.current = true;
  lineages.push_back(std::move(cur));

  // 2. The plan. The base lineage is the one a restore at the cutoff reads: the newest whose
  //    first restorable commit is at or before it.
  std::size_t base = lineages.size();
  for (std::size_t i = lineages.size(); i-- > 0 && base == lineages.size();) {
    auto r = detail::range_of(lineages[i].manifest);
    if (r && r->first_time_us <= keep_after_us) base = i;
  }
  std::vector<Doomed> doomed;
  for (std::size_t i = 0; i < lineages.size(); ++i) {
    Lineage& l = lineages[i];
    const std::string dir = detail::lineage_dir(prefix, l.entry.log_id);
    if (!l.current && i != base) {
      const auto last = last_commit_time(l.manifest);
      if (!last || *last < keep_after_us) {
        l.drop = true;
        continue;
      }
    }
    const std::size_t before = doomed.size();
    if (auto r = prune(store, l.manifest, keep_after_us, dir, doomed, res); !r)
      return unexpected(std::move(r.error()));
    l.pruned = doomed.size() != before;
  }

  // 3. Manifests first: the current one through the writer (also when only its tail is missing
  //    from the stored one, so that the sweep below and the store agree on what is named), the
  //    older ones directly (no writer owns them: one writer per prefix).
  for (auto& l : lineages) {
    if (l.drop) continue;
    if (!l.pruned && !l.folded && !(l.current && writer.unflushed_ > 0)) continue;
    if (l.current) {
      Manifest saved = std::move(writer.manifest_);
      writer.manifest_ = l.manifest;
      if (auto r = writer.write_manifest(); !r) {
        writer.manifest_ = std::move(saved);
        return unexpected(std::move(r.error()));
      }
    } else {
      const std::string key = detail::manifest_key(prefix, l.entry.log_id);
      auto put = store.put(key, manifest_to_json(l.manifest));
      if (!put) return unexpected(storage_failure("writing " + key, put.error()));
    }
  }
  // Then lineages.json without the dropped lineages.
  const bool any_dropped = std::any_of(lineages.begin(), lineages.end(),
                                       [](const Lineage& l) { return l.drop; });
  if (any_dropped) {
    std::vector<detail::LineageEntry> kept;
    for (const auto& e : entries) {
      const bool dropped = std::any_of(lineages.begin(), lineages.end(), [&](const Lineage& l) {
        return l.drop && l.entry.log_id == e.log_id;
      });
      if (!dropped) kept.push_back(e);
    }
    const std::string key = detail::lineages_key(prefix);
    auto put = store.put(key, detail::lineages_to_json(kept));
    if (!put) return unexpected(storage_failure("writing " + key, put.error()));
  }

  // 4. Now nothing names them: delete. A dropped lineage's manifest goes before its objects.
  auto remove_all = [&](const std::vector<Doomed>& v) -> BackupResult<void> {
    if (v.empty()) return {};
    std::vector<std::string> keys;
    for (const auto& d : v) keys.push_back(d.key);
    auto r = store.remove_many(keys);
    if (!r) return unexpected(storage_failure("deleting " + keys.front() + " and others", r.error()));
    for (const auto& d : v) {
      ++res.objects_deleted;
      res.bytes_deleted += d.size;
      res.deleted_keys.push_back(d.key);
    }
    return {};
  };
  for (const auto& l : lineages) {
    if (!l.drop) continue;
    const std::string dir = detail::lineage_dir(prefix, l.entry.log_id);
    const std::string mkey = detail::manifest_key(prefix, l.entry.log_id);
    if (auto r = remove_all({{mkey, l.manifest_bytes}}); !r) return unexpected(std::move(r.error()));
    res.snapshots_deleted += l.manifest.snapshots.size();
    res.batches_deleted += l.manifest.batch_count();
    ++res.lineages_deleted;
    auto objects = store.list(dir);
    if (!objects) return unexpected(storage_failure("listing " + dir, objects.error()));
    std::vector<Doomed> rest;
    for (const auto& o : *objects) rest.push_back({o.key, o.size});
    if (auto r = remove_all(rest); !r) return unexpected(std::move(r.error()));
  }
  if (auto r = remove_all(doomed); !r) return unexpected(std::move(r.error()));

  // 5. Leftovers (one LIST of the prefix): objects of the current lineage its manifest does not
  //    name (uploads whose manifest write failed), and lineage directories lineages.json no
  //    longer names (a retention cut short after rewriting it) whose every commit is before the
  //    cutoff. One writer per prefix is assumed, so no other writer is filling them.
  if (options.sweep_unreferenced) {
    auto objects = store.list(prefix);
    if (!objects) return unexpected(storage_failure("listing " + prefix, objects.error()));
    const std::string current_dir = detail::lineage_dir(prefix, current_id);
    std::set<std::string> named;
    for (const auto& s : writer.manifest_.snapshots) named.insert(current_dir + s.key);
    for (const auto& b : writer.manifest_.batches) named.insert(current_dir + b.key);
    for (const auto& i : writer.manifest_.indexes) named.insert(current_dir + i.key);
    named.insert(current_dir + "manifest.json");
    // A sealed batch, or an index under another index, is named by the index above it: without
    // reading every index, a batch or index object whose first frame lies within a named
    // index's frames counts as named (one that index does not list, a leftover of a crashed
    // upload, goes once the index does).
    const auto& indexes = writer.manifest_.indexes;
    auto sealed = [&](const std::string& key) {
      const auto first = key_first_frame(std::string_view(key).substr(current_dir.size()));
      if (!first) return false;
      auto i = std::upper_bound(indexes.begin(), indexes.end(), *first,
                                [](log::Frame f, const IndexEntry& e) { return f < e.first_frame; });
      return i != indexes.begin() && std::prev(i)->last_frame >= *first;
    };
    std::vector<Doomed> stray;
    std::map<std::string, std::vector<Doomed>> orphans;  // by lineage directory
    for (const auto& o : *objects) {
      if (o.key.starts_with(current_dir)) {
        if (!named.contains(o.key) && !sealed(o.key)) stray.push_back({o.key, o.size});
        continue;
      }
      const std::string rest = o.key.substr(prefix.size());
      const auto slash = rest.find('/');
      if (slash == std::string::npos) continue;
      const auto id = log::parse_log_id(rest.substr(0, slash));
      if (!id || log::format_log_id(*id) != rest.substr(0, slash)) continue;
      const bool listed = std::any_of(lineages.begin(), lineages.end(), [&](const Lineage& l) {
        return !l.drop && l.entry.log_id == *id;
      });
      if (!listed) orphans[detail::lineage_dir(prefix, *id)].push_back({o.key, o.size});
    }
    if (auto r = remove_all(stray); !r) return unexpected(std::move(r.error()));
    for (auto& [dir, doomed_objects] : orphans) {
      const std::string mkey = dir + "manifest.json";
      auto m = std::find_if(doomed_objects.begin(), doomed_objects.end(),
                            [&](const Doomed& d) { return d.key == mkey; });
      if (m != doomed_objects.end()) {
        auto got = store.get(mkey);
        if (!got) return unexpected(storage_failure("manifest " + mkey, got.error()));
        auto parsed = manifest_from_json(*got, mkey);
        if (!parsed) continue;  // not ours to judge: leave it
        const auto last = last_commit_time(*parsed);
        if (last && *last >= keep_after_us) continue;
        // The manifest first, as for a dropped lineage.
        if (auto r = remove_all({*m}); !r) return unexpected(std::move(r.error()));
        doomed_objects.erase(m);
      }
      if (auto r = remove_all(doomed_objects); !r) return unexpected(std::move(r.error()));
    }
  }
  return res;
}

}  // namespace quire::backup
