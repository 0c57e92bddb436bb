"""The official Python SDK's client pinned to 2026-07-28 starts the gateway with --stdio and
uses it with no initialize: lists, a call, and an elicitation round through the bridge to
the legacy backend behind it.

Usage: sdk_modern_stdio.py GATEWAY_EXE CONFIG LOG_DIR
Prints one JSON line of what it saw.
"""
import json
import sys

import anyio
from mcp import Client, StdioServerParameters, types


async def elicitation(context, params):
    content = {"name": "Ada"} if "name" in params.message else {"color": "green"}
    return types.ElicitResult(action="accept", content=content)


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main(exe, config, logs):
    params = StdioServerParameters(command=exe, args=["--stdio", "--config", config, "--log-dir", logs])
    out = {}
    async with Client(params, mode="2026-07-28", elicitation_callback=elicitation) as c:
        tools = [t.name for t in (await c.list_tools()).tools]
        out["listed"] = "test_simple_text" in tools
        out["simple"] = text_of(await c.call_tool("test_simple_text", {}))
        out["multi_round"] = text_of(await c.call_tool("test_input_required_result_multi_round", {}))
    print(json.dumps(out))


anyio.run(main, *sys.argv[1:4])
