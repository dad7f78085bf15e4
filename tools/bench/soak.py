"""Soak a running hearth serve: CLIENTS threads send /api/chat requests to the
built-in model back to back for SECONDS, printing the server's resident memory
(from /proc/PID/status) and the request counts every 30 s.

Usage: python3 tools/bench/soak.py URL SERVER_PID SECONDS CLIENTS
"""
import json, os, sys, threading, time, urllib.request, subprocess
url = sys.argv[1]; pid = int(sys.argv[2]); seconds = int(sys.argv[3]); clients = int(sys.argv[4])
stop = time.time() + seconds
counts = {"ok": 0, "err": 0}
lock = threading.Lock()
def client(k):
    i = 0
    while time.time() < stop:
        i += 1
        body = {"model": "hearth-tiny", "stream": False, "options": {"num_predict": 32, "temperature": 0.7},
                "messages": [{"role": "user", "content": f"What is {k} plus {i % 50}?"}]}
        req = urllib.request.Request(url + "/api/chat", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                json.load(r)
            with lock: counts["ok"] += 1
        except Exception as e:
            with lock: counts["err"] += 1
threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
for t in threads: t.start()
start = time.time()
while time.time() < stop:
    rss = int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])
    print(f"{time.time()-start:6.0f}s rss {rss/1024:.1f} MiB ok {counts['ok']} err {counts['err']}", flush=True)
    time.sleep(30)
for t in threads: t.join(timeout=330)
rss = int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])
print(f"end rss {rss/1024:.1f} MiB ok {counts['ok']} err {counts['err']}", flush=True)
