"""The official MCP Python SDK against a profile in catalogue mode: it lists the tools
(three), searches the catalogue for a keyword, describes the tool found and calls it
through call_tool. Prints one JSON line.

Usage: sdk_catalogue.py URL KEYWORD              (URL: a profile's /p/NAME/mcp)
"""
import json
import sys

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main(url, keyword):
    out = {}
    async with streamable_http_client(url) as (read, write, *_):
        async with ClientSession(read, write) as s:
            await s.initialize()
            out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
            found = await s.call_tool("search_tools", {"query": keyword})
            out["found"] = [t["name"] for t in found.structured_content["tools"]]
            out["total"] = found.structured_content["total"]
            described = await s.call_tool("describe_tool", {"name": out["found"][0]})
            out["described"] = described.structured_content.get("description")
            called = await s.call_tool("call_tool", {"name": out["found"][0], "arguments": {"n": 7}})
            out["called"] = called.content[0].text
            out["structured"] = called.structured_content
            missing = await s.call_tool("describe_tool", {"name": "nope"})
            out["missing_is_error"] = missing.is_error
    print(json.dumps(out))


anyio.run(main, sys.argv[1], sys.argv[2])
