-- Appended to wrk's own report: one machine-readable line for bench/run. Latencies are
-- exact integer microseconds (wrk's text report rounds and mixes us/ms/s), and p99.9,
-- which `--latency` does not print, comes from the same histogram.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d p999_us=%d " ..
    "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d bad_status=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.timeout, e.status))
end
