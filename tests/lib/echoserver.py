"""A one-thread, non-blocking TCP echo server, run as its own process (netserv.EchoProcess).

Thread-per-connection servers in the test process answer slowly under load (the GIL, thread
start-up) and so spread a burst out; this one answers thousands of connections as fast as the
kernel hands them over, which is what exposes lost wakeups in sshmux. Prints its port on stdout;
each line on stdin is answered with the number of connections accepted so far; errors go to
stderr. Runs until stdin closes or it is killed."""
import selectors
import socket
import sys


def serve():
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin, selectors.EVENT_READ, "control")
    print(ls.getsockname()[1], flush=True)
    pending, accepted = {}, 0   # socket -> bytes still to echo
    while True:
        for key, events in sel.select():
            if key.data == "listen":
                accepted += accept_all(ls, sel, pending)
            elif key.data == "control":
                if not sys.stdin.readline():
                    return
                print(accepted, flush=True)
            else:
                serve_conn(key.fileobj, events, sel, pending)


def accept_all(ls, sel, pending):
    n = 0
    while True:
        try:
            c, _ = ls.accept()
        except BlockingIOError:
            return n
        except OSError as e:   # EMFILE and friends: say so, keep serving the others
            print(f"accept: {e}", file=sys.stderr, flush=True)
            return n
        c.setblocking(False)
        pending[c] = b""
        sel.register(c, selectors.EVENT_READ, "conn")
        n += 1


def serve_conn(c, events, sel, pending):
    try:
        if events & selectors.EVENT_READ:
            data = c.recv(65536)
            if not data:
                # EOF: finish echoing (blocking is fine, the peer is reading), then close
                c.setblocking(True)
                c.sendall(pending.pop(c))
                sel.unregister(c)
                c.close()
                return
            pending[c] += data
        if pending[c]:
            sent = c.send(pending[c])
            pending[c] = pending[c][sent:]
        sel.modify(c, selectors.EVENT_READ | (selectors.EVENT_WRITE if pending[c] else 0), "conn")
    except (BlockingIOError, InterruptedError):
        pass
    except OSError as e:
        print(f"connection: {e}", file=sys.stderr, flush=True)
        sel.unregister(c)
        pending.pop(c, None)
        c.close()


if __name__ == "__main__":
    serve()
