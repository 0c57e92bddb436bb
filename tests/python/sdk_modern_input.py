"""The official Python SDK's client pinned to 2026-07-28, answering input_required rounds:
a legacy backend behind the gateway elicits twice and samples once, and the gateway turns
each of its requests into input_required. Prints one JSON line."""

import json
import sys

import anyio
from mcp import Client, types

asked = []


async def elicitation(context, params):
    asked.append(params.message)
    content = {"name": "Ada"} if "name" in params.message else {"color": "green"}
    return types.ElicitResult(action="accept", content=content)


async def sampling(context, params):
    asked.append("sampling")
    return types.CreateMessageResult(role="assistant", model="py-model", stopReason="endTurn",
                                     content=types.TextContent(type="text", text="Paris, said Python"))


def text_of(result):
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def main(url):
    out = {}
    async with Client(url, mode="2026-07-28", elicitation_callback=elicitation,
                      sampling_callback=sampling) as c:
        out["multi_round"] = text_of(await c.call_tool("test_input_required_result_multi_round", {}))
        out["sampling"] = text_of(await c.call_tool("test_input_required_result_sampling", {}))
    out["asked"] = asked
    print(json.dumps(out))


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
