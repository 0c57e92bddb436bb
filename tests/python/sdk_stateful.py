"""The official MCP Python SDK against a stateful backend behind the gateway
(`"scope": "session"`), one client per run, as a 2026-07-28 client (mode "2026-07-28") or
in the SDK's default mode ("auto"). Prints one JSON line of what it saw.

Usage: sdk_stateful.py URL TOKEN MODE ACTION [ARG]
       sdk_stateful.py stdio EXE CONFIG LOGS MODE ACTION [ARG]   (the gateway with --stdio)
TOKEN is sent as a bearer token ("-" for none). ACTION is one of:
  others        list the tools and call another backend's echo three times
  remember V    keep V in the stateful backend (st__remember)
  recall        what the stateful backend kept, and its pid (st__recall)
  both V        remember V, then recall it, in one client
  browse PAGE   Playwright: navigate to PAGE, then take a snapshot
"""
import json
import sys

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def act(c, action, arg):
    out = {}
    if action == "others":
        out["tools"] = len((await c.list_tools()).tools)
        for n in range(3):
            out["echo%d" % n] = text_of(await c.call_tool("other__echo", {"text": "hi %d" % n}))
    if action in ("remember", "both"):
        out["remember"] = text_of(await c.call_tool("st__remember", {"value": arg}))
    if action in ("recall", "both"):
        out["recall"] = json.loads(text_of(await c.call_tool("st__recall", {})))
    if action == "browse":
        out["navigate"] = text_of(await c.call_tool("pw__browser_navigate", {"url": arg}))
        out["snapshot"] = text_of(await c.call_tool("pw__browser_snapshot", {}))
    return out


async def main(argv):
    if argv[0] == "stdio":
        exe, config, logs, mode, action = argv[1:6]
        server = StdioServerParameters(command=exe, args=["--stdio", "--config", config, "--log-dir", logs])
        rest = argv[6:]
    else:
        url, token, mode, action = argv[:4]
        headers = {} if token == "-" else {"Authorization": "Bearer " + token}
        server = streamable_http_client(url, http_client=httpx2.AsyncClient(headers=headers, timeout=60))
        rest = argv[4:]
    arg = rest[0] if rest else None
    async with Client(server, mode=mode) as c:
        out = await act(c, action, arg)
    print(json.dumps(out))


anyio.run(main, sys.argv[1:])
