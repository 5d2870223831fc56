"""A LangChain tool-calling agent with a manual loop and chat history."""

from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
import requests


@tool
def stock_price(symbol: str) -> str:
    """Latest price for a ticker symbol."""
    return requests.get(f"https://prices.example/api/{symbol}").text  # expect: TH305


model = ChatAnthropic(model="claude-sonnet-4-5", timeout=30).bind_tools([stock_price])


def chat(question: str) -> str:  # expect: TH103
    history = [HumanMessage(question)]
    for _ in range(6):
        ai = model.invoke(history)  # expect: TH101 TH401
        history.append(ai)  # expect: TH201
        if not ai.tool_calls:
            return ai.content
        for call in ai.tool_calls:
            history.append(ToolMessage(stock_price.invoke(call["args"]), tool_call_id=call["id"]))  # expect: TH102
    return "gave up"
