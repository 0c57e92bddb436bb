"""The official Python SDK's client pinned to protocol 2026-07-28 (stateless, no
initialize) against the gateway's /mcp: discover, list, call. Prints one JSON line."""

import json
import sys

import anyio
from mcp import Client
from mcp.shared.exceptions import MCPError


async def main(url):
    out = {}
    async with Client(url, mode="2026-07-28") as c:
        tools = (await c.list_tools()).tools
        out["tools"] = sorted(t.name for t in tools)
        result = await c.call_tool("fx__echo", {"text": "modern hello"})
        out["echo"] = "\n".join(getattr(x, "text", "") for x in result.content)
        out["is_error"] = bool(result.is_error)
        try:
            await c.call_tool("fx__nope", {})
            out["unknown_code"] = None
        except MCPError as e:
            out["unknown_code"] = e.code
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
