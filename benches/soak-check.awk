# Judges a soak run from the CSV benches/soak.sh writes (one row a second):
#   t_s,rss_kib,fds,threads,emitted,acked,failed,timed_out,bolts_failed,pending,throughput_tps,metrics_ok
# Variables (awk -v): duration (s, the run's --duration), rss_tol (%), pending_tol (%),
# pending_slack (trees, default 64), fd_slack (descriptors).
# With D = duration, the windows are those of a 30-minute run scaled to D:
#   base  [D/6, D/3)   (minutes 5–10)    first third [0, D/3)
#   last  [2D/3, end]  (minutes 20–30)   last third  [2D/3, end]
# Prints the figures and PASS or FAIL per criterion, then the verdict; exits 1 on FAIL.
BEGIN {
    if (duration <= 0) { print "soak-check: -v duration=SECONDS is required" > "/dev/stderr"; exit 2 }
    if (rss_tol == "") rss_tol = 10
    if (pending_tol == "") pending_tol = 10
    if (pending_slack == "") pending_slack = 64
    if (fd_slack == "") fd_slack = 2
    b0 = duration / 6; b1 = duration / 3; l0 = 2 * duration / 3
}
NR == 1 { next }
{
    t = $1 + 0; rows++
    if (t >= b0 && t < b1) { base_sum += $2; base_n++ }
    if (t >= l0) { last_sum += $2; last_n++ }
    if (t < b1 && $3 > fd_first) fd_first = $3
    if (t >= l0 && $3 > fd_last) fd_last = $3
    if ($2 > rss_max) rss_max = $2
    if ($12 != 1) { misses++; next }
    ok++
    if (first_emitted == "") { first_emitted = $5; first_t = t }
    last_emitted = $5; last_acked = $6; last_t = t
    failed = $7; timed_out = $8; bolts_failed = $9
    if (t < b1 && $10 > pend_first) pend_first = $10
    if (t >= l0) { pend[++pend_n] = $10 + 0; tps_sum += $11; tps_n++ }
}
function verdict(name, pass, text) {
    printf "%-8s %s  %s\n", name, pass ? "PASS" : "FAIL", text
    if (!pass) failures++
}
END {
    if (rows == 0) { print "soak-check: no samples"; exit 1 }
    printf "samples  %d over %.0f s (%d with metrics, %d scrapes failed); peak RSS %.1f MiB\n",
        rows, t, ok, misses, rss_max / 1024
    verdict("samples", ok >= 0.9 * duration && base_n > 0 && last_n > 0,
        sprintf("%d of the %d expected rows had metrics", ok, duration))

    base = base_n ? base_sum / base_n : 0
    last = last_n ? last_sum / last_n : 0
    change = base > 0 ? 100 * (last - base) / base : 0
    verdict("rss", base > 0 && change <= rss_tol && change >= -rss_tol,
        sprintf("mean %.1f MiB over [%.0f s, %.0f s), %.1f MiB from %.0f s: %+.1f %% (within ±%s %%)",
            base / 1024, b0, b1, last / 1024, l0, change, rss_tol))

    verdict("failed", ok > 0 && failed + timed_out + bolts_failed == 0,
        sprintf("spouts failed %d (timed out %d), bolts failed %d", failed, timed_out, bolts_failed))

    # Shell sort of the last third's pending counts, for its 95th percentile.
    for (gap = int(pend_n / 2); gap > 0; gap = int(gap / 2))
        for (i = gap + 1; i <= pend_n; i++) {
            v = pend[i]
            for (j = i; j > gap && pend[j - gap] > v; j -= gap) pend[j] = pend[j - gap]
            pend[j] = v
        }
    p95 = pend_n ? pend[int(0.95 * (pend_n - 1)) + 1] : 0
    margin = pend_first * pending_tol / 100
    if (margin < pending_slack) margin = pending_slack
    verdict("pending", pend_n > 0 && p95 <= pend_first + margin,
        sprintf("first third max %d; last third p95 %d, max %d (allowed %d)",
            pend_first, p95, pend[pend_n], pend_first + margin))

    verdict("fds", fd_last <= fd_first + fd_slack,
        sprintf("first third max %d, last third max %d (slack %d)", fd_first, fd_last, fd_slack))

    if (last_t > first_t)
        printf "rate     %.0f tweets/s emitted over the run, %.0f/s in the last third; %d acked\n",
            (last_emitted - first_emitted) / (last_t - first_t), tps_n ? tps_sum / tps_n : 0, last_acked
    print (failures ? "verdict  FAIL" : "verdict  PASS")
    exit failures ? 1 : 0
}
