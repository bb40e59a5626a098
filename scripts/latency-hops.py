"""Wall clock per hop of sequential jobs (issue 13), from `perf script` output of the
tracepoints syscalls:sys_enter_sendto and syscalls:sys_exit_recvfrom recorded system wide.

Every frame leaves with a sendto and arrives with a recvfrom, so consecutive events give
the time a message spent between the two processes (one process sends, the other's next
successful receive: delivery plus the receiver's wake-up) and the time a process spent on
it (its receive, then its next send). Usage: latency-hops.py PERF_SCRIPT_TEXT SERVER_TIDS_FILE
"""
import collections
import re
import statistics
import sys

PAT = re.compile(
    r"^\s*(\S+)\s+(\d+)\s+\[\d+\]\s+([\d.]+):\s+syscalls:(sys_enter_sendto|sys_exit_recvfrom):\s*(.*)$"
)


def events(path):
    out = []
    for line in open(path):
        m = PAT.match(line)
        if not m:
            continue
        _comm, tid, t, kind, rest = m.groups()
        if kind == "sys_exit_recvfrom":
            r = re.search(r"0x([0-9a-f]+)", rest)
            n = int(r.group(1), 16) if r else -1
            if n <= 0 or n > 1 << 40:  # EAGAIN and other errors
                continue
            out.append((float(t) * 1e6, tid, "receive"))
        else:
            out.append((float(t) * 1e6, tid, "send"))
    out.sort()
    return out


def main():
    ev = events(sys.argv[1])
    server = set(open(sys.argv[2]).read().split())
    side = lambda tid: "server" if tid in server else "bench"
    gaps = collections.defaultdict(list)
    for (t0, tid0, k0), (t1, tid1, k1) in zip(ev, ev[1:]):
        gaps[f"{side(tid0)} {k0} -> {side(tid1)} {k1}"].append(t1 - t0)
    print(f"{len(ev)} events over {(ev[-1][0] - ev[0][0]) / 1e3:.1f} ms")
    for k, v in sorted(gaps.items(), key=lambda kv: -sum(kv[1]))[:8]:
        print(
            f"{k:34s} n={len(v):6d} total={sum(v) / 1e3:8.1f} ms "
            f"p50={statistics.median(v):6.1f} us mean={statistics.mean(v):6.1f} us"
        )


if __name__ == "__main__":
    main()
