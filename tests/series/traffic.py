# The pods' traffic of tests/exporter_series_live.rs and bench/series.py: moves itself into
# each cgroup.procs given, and from there makes N connections to 127.0.0.1:PORT and N to
# [::1]:PORT, one byte each way, and N connects to REFUSED on both.
#   python3 traffic.py PORT REFUSED N CGROUP.PROCS...
import os, socket, sys
port, refused, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for procs in sys.argv[4:]:
    with open(procs, 'w') as f:
        f.write(str(os.getpid()))
    for host, family in (('127.0.0.1', socket.AF_INET), ('::1', socket.AF_INET6)):
        for _ in range(n):
            s = socket.socket(family)
            s.settimeout(10)
            s.connect((host, port))
            s.sendall(b'x')
            s.recv(1)
            s.close()
            s = socket.socket(family)
            try:
                s.connect((host, refused))
            except ConnectionRefusedError:
                pass
            s.close()
