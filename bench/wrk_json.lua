-- wrk script for the quire benchmarks: prints wrk's result as one JSON line in the format of
-- bench/loadgen (requests, errors, seconds, rps, p50/p90/p99 in µs) so bench/run can record it.
done = function(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local seconds = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"errors":%d,"seconds":%.3f,"rps":%.1f,"p50_us":%.2f,"p90_us":%.2f,"p99_us":%.2f}\n',
    summary.requests, errors, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
