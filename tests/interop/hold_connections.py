"""Holds N idle TCP connections to each given port until stdin closes (a separate process, so the
connections are not the test's own). Prints `held N` once they are all open."""
import resource
import socket
import sys


def main():
    count = int(sys.argv[1])
    ports = [int(port) for port in sys.argv[2:]]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count * len(ports) + 64
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    sockets = []
    for port in ports:
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
    print(f"held {len(sockets)}", flush=True)
    sys.stdin.read()
    for sock in sockets:
        sock.close()


if __name__ == "__main__":
    main()
