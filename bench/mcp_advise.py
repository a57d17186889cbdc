"""Asks Postgres MCP Pro (crystaldba/postgres-mcp) for index advice through an MCP client over
stdio, as an agent would, and prints the CREATE INDEX statements it recommends, one a line.

usage: mcp_advise.py DATABASE_URL workload
       mcp_advise.py DATABASE_URL queries FILE   (one query a line)
The tool's raw answer goes to stderr; a failure prints nothing on stdout and exits 1.
"""
import asyncio
import json
import os
import re
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main() -> int:
    url, mode = sys.argv[1], sys.argv[2]
    server = StdioServerParameters(
        command=os.path.join(os.path.dirname(sys.executable), "postgres-mcp"),
        args=["--access-mode=unrestricted", url],
        env={**os.environ, "DATABASE_URI": url},
    )
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            if mode == "workload":
                result = await session.call_tool("analyze_workload_indexes", {"max_index_size_mb": 10000, "method": "dta"})
            else:
                with open(sys.argv[3]) as f:
                    queries = [line.strip() for line in f if line.strip()]
                result = await session.call_tool("analyze_query_indexes", {"queries": queries, "max_index_size_mb": 10000, "method": "dta"})
    text = "\n".join(getattr(c, "text", "") for c in result.content)
    print(text, file=sys.stderr)
    if result.isError or "error" in text.lower()[:200]:
        return 1
    # The answer is a Python-style dict: each recommendation's 'index_definition'.
    found = re.findall(r"'index_definition': '([^']+)'", text)
    for statement in dict.fromkeys(found):
        print(statement)
    return 0


sys.exit(asyncio.run(main()))
