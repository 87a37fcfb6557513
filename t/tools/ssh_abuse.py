#!/usr/bin/python3
# A hostile but authenticated SSH client for t/162-ssh-channel-abuse.t.
#
# Paramiko (Debian's python3-paramiko) rather than a libssh client: the
# abuse needs packets no well-behaved client API sends (window adjusts
# for any channel and any increment, channel data beyond the peer's
# window, a packet over 256 KiB, global requests of any name, a peer that
# stops reading), and paramiko's Message/_send_user_message give exactly
# that in a few lines; libssh keeps its packet layer private.
#
# usage: ssh_abuse.py HOST PORT USER KEYFILE MODE [ARG...]
# Prints "key=value" lines; the last is "end disconnected=0|1 ...".
# Every loop is bounded by a count and by a deadline.

import logging
import socket
import sys
import threading
import time

import paramiko
from paramiko.common import (cMSG_CHANNEL_DATA, cMSG_CHANNEL_WINDOW_ADJUST,
                             cMSG_GLOBAL_REQUEST, cMSG_IGNORE)
from paramiko.message import Message


class Sock:
    """A socket whose reads can be stopped: a peer that never reads."""

    def __init__(self, sock):
        self.sock = sock
        self.stopped = threading.Event()

    def recv(self, n):
        if self.stopped.is_set():
            time.sleep(0.1)
            raise socket.timeout()
        return self.sock.recv(n)

    def __getattr__(self, name):
        return getattr(self.sock, name)


class DisconnectLog(logging.Handler):
    """Prints the server's DISCONNECT text (paramiko logs it)."""

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Disconnect"):
            print("disconnect_message=" + msg.replace(" ", "_"), flush=True)


def out(**kv):
    print(" ".join("%s=%s" % (k, v) for k, v in kv.items()), flush=True)


def connect(host, port, user, keyfile):
    sock = Sock(socket.create_connection((host, port), timeout=10))
    t = paramiko.Transport(sock)
    t.start_client(timeout=15)
    t.auth_publickey(user, paramiko.Ed25519Key.from_private_key_file(keyfile))
    return t, sock


def raw(t, *parts):
    m = Message()
    for p in parts:
        if isinstance(p, bool):
            m.add_boolean(p)
        elif isinstance(p, bytes) and len(p) == 1:
            m.add_byte(p)
        elif isinstance(p, int):
            m.add_int(p)
        else:
            m.add_string(p)
    t._send_user_message(m)


def wait_closed(t, secs):
    deadline = time.time() + secs
    while t.is_active() and time.time() < deadline:
        time.sleep(0.05)
    return 0 if t.is_active() else 1


def main():
    logging.getLogger("paramiko").addHandler(DisconnectLog())
    logging.getLogger("paramiko").setLevel(logging.INFO)
    host, port, user, keyfile, mode = sys.argv[1:6]
    args = [int(a) if a.isdigit() else a for a in sys.argv[6:]]
    t, sock = connect(host, int(port), user, keyfile)
    out(event="authenticated")
    start = time.time()
    done = 0
    refused = 0

    if mode == "channels":
        # N channel opens one after the other: session, direct-tcpip, ...
        # (the one accepted is kept: a dropped paramiko Channel closes)
        kept = []
        for i in range(args[0]):
            if not t.is_active():
                break
            try:
                if i % 2 == 0:
                    kept.append(t.open_session(timeout=5))
                else:
                    kept.append(t.open_channel("direct-tcpip",
                                               ("10.0.0.1", 22),
                                               ("127.0.0.1", 40000 + i),
                                               timeout=5))
            except (paramiko.ChannelException, paramiko.SSHException,
                    EOFError):
                refused += 1
            done += 1
        # what the session channel was told before the close
        text = b""
        if kept:
            kept[0].settimeout(2)
            try:
                while len(text) < 4096:
                    b = kept[0].recv(1024)
                    if not b:
                        break
                    text += b
            except (socket.timeout, EOFError, OSError):
                pass
        out(channel_text=text.decode("utf-8", "replace").strip()
            .replace(" ", "_").replace("\r\n", "|"))

    elif mode == "forwards":
        # N tcpip-forward, each waiting for its answer, all different names
        # (past --max-forwards each refusal waits for a session channel
        # that never comes: half a second each)
        for i in range(args[0]):
            if not t.is_active():
                break
            r = t.global_request("tcpip-forward", ("abuse%d" % i, 80),
                                 wait=True)
            if r is None:
                refused += 1
            done += 1

    elif mode == "forward-cancel":
        # N cycles: tcpip-forward NAME_i, then cancel-tcpip-forward NAME_i
        # (each a name claimed in Redis, released, two audit rows)
        for i in range(args[0]):
            if not t.is_active():
                break
            r = t.global_request("tcpip-forward", ("cycle%d" % i, 80),
                                 wait=True)
            if r is None:
                refused += 1
            done += 1
            if not t.is_active():
                break
            t.global_request("cancel-tcpip-forward", ("cycle%d" % i, 80),
                             wait=True)
            done += 1

    elif mode == "forwards-pipelined":
        # N tcpip-forward sent without waiting for any answer
        for i in range(args[0]):
            if not t.is_active():
                break
            try:
                raw(t, cMSG_GLOBAL_REQUEST, "tcpip-forward", True,
                    "pipe%d" % i, 80 + i % 1000)
            except (EOFError, OSError, paramiko.SSHException):
                break
            done += 1

    elif mode == "globals":
        # global requests of other names: each answered with a failure
        for i in range(args[0]):
            if not t.is_active():
                break
            r = t.global_request("no-such-request-%d@example.com" % i,
                                 wait=True)
            if r is None:
                refused += 1
            done += 1

    elif mode == "globals-noread":
        # requests wanting an answer, for SECS seconds, never reading one
        sock.stopped.set()
        deadline = time.time() + args[0]

        def flood():
            nonlocal done
            while time.time() < deadline and t.is_active():
                raw(t, cMSG_GLOBAL_REQUEST, "x" * 200, True)
                done += 1

        th = threading.Thread(target=flood, daemon=True)
        th.start()
        th.join(args[0] + 1)
        out(sent=done, sent_bytes=done * 240)
        sock.stopped.clear()
        # then, reading again, the session still answers
        r = t.global_request("still-there@example.com", wait=True) \
            if t.is_active() else "gone"
        out(answers_after=("yes" if r is None else "no"))

    elif mode == "window-adjust":
        # SECS seconds of window adjusts (overflowing increments) on the
        # session channel, then a request round trip
        chan = t.open_session(timeout=10)
        deadline = time.time() + args[0]
        while time.time() < deadline and t.is_active():
            for _ in range(100):
                raw(t, cMSG_CHANNEL_WINDOW_ADJUST, chan.remote_chanid,
                    0xFFFFFFF0)
                done += 1
        r = t.global_request("still-there@example.com", wait=True) \
            if t.is_active() else "gone"
        out(answers_after=("yes" if r is None else "no"))

    elif mode == "oversize":
        # one SSH_MSG_IGNORE of ARG bytes
        raw(t, cMSG_IGNORE, b"x" * args[0] + b"")
        done = 1
        time.sleep(1)
        r = t.global_request("still-there@example.com", wait=True) \
            if t.is_active() else "gone"
        out(answers_after=("yes" if r is None else "no"))

    elif mode == "window-ignore":
        # -R NAME; on the first forwarded connection, ARG MiB of channel
        # data sent at once, whatever window the server granted
        got = threading.Event()
        chans = []

        def handler(chan, origin, server):
            chans.append(chan)
            got.set()

        t.request_port_forward(args[0], 80, handler)
        out(event="forward-up")
        if got.wait(30):
            chan = chans[0]
            block = b"y" * 32768
            for _ in range(args[1] * 32):
                if not t.is_active():
                    break
                try:
                    raw(t, cMSG_CHANNEL_DATA, chan.remote_chanid, block)
                except (EOFError, OSError, paramiko.SSHException):
                    break
                done += 1
            out(sent_bytes=done * 32768, window_granted=chan.out_window_size)

    else:
        sys.exit("unknown mode " + mode)

    disconnected = wait_closed(t, 5)
    out(end=mode, done=done, refused=refused, disconnected=disconnected,
        secs="%.2f" % (time.time() - start))
    t.close()


if __name__ == "__main__":
    main()
