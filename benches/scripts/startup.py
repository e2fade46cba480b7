"""Start/stop time of two brook binaries (old vs new), alternating, medians.

Usage: python3 benches/scripts/startup.py OLD_BROOK NEW_BROOK
"""
import os, subprocess, sys, tempfile, time, json, signal, statistics
bins = {"old": sys.argv[1], "new": sys.argv[2]}
def start(bin, data, ready):
    cfg = os.path.join(os.path.dirname(data), "b.toml")
    open(cfg, "w").write(f'log.dirs = ["{data}"]\nlisteners = "127.0.0.1:0"\nadmin.listener = "127.0.0.1:0"\n')
    if os.path.exists(ready): os.remove(ready)
    t = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROOK_")}
    p = subprocess.Popen([bin, "serve", "--config", cfg, "--ready-file", ready], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while not os.path.exists(ready):
        if p.poll() is not None: raise SystemExit(f"{bin} exited")
        time.sleep(0.002)
    return p, time.monotonic() - t
res = {k: {"fresh": [], "restart": [], "stop": []} for k in bins}
for run in range(5):
    for name in (["old", "new"] if run % 2 == 0 else ["new", "old"]):
        d = tempfile.mkdtemp(); data = os.path.join(d, "data"); ready = os.path.join(d, "ready.json")
        p, t = start(bins[name], data, ready); res[name]["fresh"].append(t)
        t0 = time.monotonic(); p.send_signal(signal.SIGTERM); p.wait(); res[name]["stop"].append(time.monotonic() - t0)
        p, t = start(bins[name], data, ready); res[name]["restart"].append(t)
        p.send_signal(signal.SIGTERM); p.wait()
for name in bins:
    print(name, {k: f"{statistics.median(v)*1000:.0f} ms" for k, v in res[name].items()})
