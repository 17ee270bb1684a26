"""An independent client of the waiting room: Python's aioquic, written from docs/waiting-room.md
alone (it imports nothing of Boxoffice's).

Joins a room over QUIC (ALPN boxoffice-room/1, the node's self-signed certificate pinned by its
SHA-256), solves the proof of work, waits for its admission, holds seats with the admission token
over HTTP, and checks the room's answers to a resume on another node, a rejoin, a forged ticket
and another event's ticket. Prints one JSON line per check; exits non-zero on the first failure.

usage: room_quic.py BASE_URL EVENT OTHER_EVENT FAN_TOKEN
"""

import asyncio
import hashlib
import json
import ssl
import struct
import sys
import urllib.error
import urllib.request

from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration

ALPN = "boxoffice-room/1"
ANSWER_TIMEOUT_S = 30


def report(**fields):
    print(json.dumps(fields), flush=True)


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                             **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), json.loads(error.read() or b"null")


def peer_certificate_sha256(protocol):
    # aioquic keeps the peer's certificate on its TLS context; this is the one private attribute
    # the client reads, kept in one place.
    from cryptography.hazmat.primitives.serialization import Encoding
    certificate = protocol._quic.tls._peer_certificate
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def solve(challenge, bits):
    prefix = challenge.encode()
    answer = 0
    while True:
        digest = hashlib.sha256(prefix + struct.pack(">Q", answer)).digest()
        if int.from_bytes(digest, "big") >> (256 - bits) == 0 if bits else True:
            return answer
        answer += 1


class Fan:
    """One bidirectional stream: 4-byte big-endian length, then that many bytes of JSON."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def send(self, message):
        body = json.dumps(message).encode()
        self.writer.write(struct.pack(">I", len(body)) + body)

    async def recv(self):
        header = await asyncio.wait_for(self.reader.readexactly(4), ANSWER_TIMEOUT_S)
        (length,) = struct.unpack(">I", header)
        return json.loads(await asyncio.wait_for(self.reader.readexactly(length), ANSWER_TIMEOUT_S))

    async def until(self, *types):
        seen = []
        while True:
            message = await self.recv()
            seen.append(message)
            if message["type"] in types or message["type"] == "error":
                return message, seen


async def with_node(node, body):
    host, port = node["endpoint"].rsplit(":", 1)
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE,
                                      server_name="localhost")
    async with connect(host, int(port), configuration=configuration) as protocol:
        pinned = peer_certificate_sha256(protocol)
        assert pinned == node["certSha256"], f"node {node['node']} presented {pinned}, listed {node['certSha256']}"
        return await body(protocol)


async def open_fan(protocol):
    reader, writer = await protocol.create_stream()
    return Fan(reader, writer)


async def main():
    base, event, other_event, token = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    status, _, info = http("GET", f"{base}/events/{event}/waiting-room")
    assert status == 200 and len(info["nodes"]) >= 2, f"room info: {status} {info}"
    by_id = {n["node"]: n for n in info["nodes"]}

    async def join(protocol):
        fan = await open_fan(protocol)
        fan.send({"type": "hello", "event": event, "token": token, "ticket": None})
        challenge, _ = await fan.until("challenge", "redirect")
        if challenge["type"] == "redirect":
            return challenge
        assert challenge["type"] == "challenge", challenge
        fan.send({"type": "join", "challenge": challenge["challenge"], "answer": 0 if challenge["bits"] == 0 else 1})
        wrong, _ = await fan.until("ticket")
        # Answer 0 or 1 may solve a low difficulty by chance; only a refusal is checked for its code.
        if wrong["type"] == "error":
            assert wrong["code"] == "bad_answer", wrong
        report(check="wrong_answer", answer=wrong["type"], code=wrong.get("code"))
        fan.send({"type": "join", "challenge": challenge["challenge"], "answer": solve(challenge["challenge"],
                                                                                         challenge["bits"])})
        ticket, _ = await fan.until("ticket")
        assert ticket["type"] == "ticket", ticket
        admitted, seen = await fan.until("admitted")
        assert admitted["type"] == "admitted", admitted
        positions = [m for m in seen if m["type"] == "position"]
        assert positions, f"no position before the admission: {seen}"
        return ticket, admitted, positions

    # Each fan joins at its home node; any other node redirects there.
    first = info["nodes"][0]
    joined = await with_node(first, join)
    if isinstance(joined, dict):
        assert joined["type"] == "redirect" and joined["nodes"], joined
        report(check="redirected", from_node=first["node"], to_node=joined["nodes"][0]["node"])
        first = by_id[joined["nodes"][0]["node"]]
        joined = await with_node(first, join)
    ticket, admitted, positions = joined
    report(check="joined", node=first["node"], place=ticket["place"], positions=len(positions),
           first_position=positions[0])
    second = next(n for n in info["nodes"] if n["node"] != first["node"])

    status, kind, body = http("POST", f"{base}/events/{event}/bookings", {"quantity": 1},
                              {"Authorization": f"Bearer {token}"})
    assert status == 403 and kind.startswith("application/problem+json") and "waitingRoom" in body, (status, body)
    report(check="hold_without_admission", status=status, type=body["type"])
    status, _, body = http("POST", f"{base}/events/{event}/bookings", {"quantity": 1},
                           {"Authorization": f"Bearer {token}", "Admission-Token": admitted["admissionToken"]})
    assert status == 201, (status, body)
    report(check="hold_with_admission", status=status, booking=body["bookingId"])

    async def elsewhere(protocol):
        fan = await open_fan(protocol)
        fan.send({"type": "hello", "event": event, "token": token, "ticket": ticket["ticket"]})
        again, _ = await fan.until("ticket")
        answer, _ = await fan.until("admitted")
        rejoin = await open_fan(protocol)
        rejoin.send({"type": "hello", "event": event, "token": token, "ticket": None})
        sent_home, _ = await rejoin.until("redirect", "ticket", "challenge")
        forged = ticket["ticket"][:-3] + ("AAA" if not ticket["ticket"].endswith("AAA") else "BBB")
        bad = await open_fan(protocol)
        bad.send({"type": "hello", "event": event, "token": token, "ticket": forged})
        forged_answer, _ = await bad.until("ticket")
        other = await open_fan(protocol)
        other.send({"type": "hello", "event": other_event, "token": token, "ticket": ticket["ticket"]})
        other_answer, _ = await other.until("ticket")
        return again, answer, sent_home, forged_answer, other_answer

    again, answer, sent_home, forged_answer, other_answer = await with_node(second, elsewhere)
    assert again["type"] == "ticket" and again["place"] == ticket["place"], f"resume on another node: {again}"
    assert answer["type"] == "admitted" and answer["admissionToken"] == admitted["admissionToken"], answer
    report(check="resume_elsewhere", node=second["node"], same_place=True, same_admission=True)
    # The node the fan resumed at knows its place now and answers with the same ticket; a node
    # that never saw the fan sends it to its home node.
    if sent_home["type"] == "ticket":
        assert sent_home["ticket"] == ticket["ticket"], f"a rejoin where the fan resumed got {sent_home}"
    else:
        assert sent_home["type"] == "redirect" and sent_home["nodes"][0]["node"] == first["node"], sent_home
    report(check="rejoin_elsewhere", answer=sent_home["type"])

    async def rejoin_home(protocol):
        fan = await open_fan(protocol)
        fan.send({"type": "hello", "event": event, "token": token, "ticket": None})
        same, _ = await fan.until("ticket", "challenge")
        return same

    same = await with_node(first, rejoin_home)
    assert same["type"] == "ticket" and same["ticket"] == ticket["ticket"], f"a rejoin got {same}"
    report(check="rejoin_gets_the_same_ticket", same=True)
    assert forged_answer["type"] == "error" and forged_answer["code"] == "bad_ticket", forged_answer
    report(check="forged_ticket", code=forged_answer["code"])
    assert other_answer["type"] == "error" and other_answer["code"] == "wrong_event", other_answer
    report(check="other_event", code=other_answer["code"])
    report(check="done", ok=True)


if __name__ == "__main__":
    asyncio.run(main())
