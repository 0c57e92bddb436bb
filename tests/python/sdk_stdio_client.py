"""The official MCP Python SDK's stdio client starts the gateway with --stdio (as Claude
Desktop would) and calls a tool through it.

Usage: sdk_stdio_client.py GATEWAY_EXE CONFIG LOG_DIR
Prints one JSON line of what it saw.
"""
import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(exe, config, logs):
    params = StdioServerParameters(command=exe, args=["--stdio", "--config", config, "--log-dir", logs])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            # Backends may still be starting: the list grows (with list_changed) as they do.
            with anyio.fail_after(20):
                while "bash__bash" not in [t.name for t in (await s.list_tools()).tools]:
                    await anyio.sleep(0.1)
            result = await s.call_tool("bash__bash", {"command": "echo over stdio"})
            print(json.dumps({"server": init.server_info.name, "text": result.content[0].text,
                              "stdout": result.structured_content["stdout"]}))


anyio.run(main, *sys.argv[1:4])
