"""A weather-and-calendar agent: the model picks tools until it can answer."""

import json

import httpx
from openai import OpenAI

client = OpenAI(timeout=30)


def get_weather(city: str) -> dict:
    r = httpx.get("https://api.weather.example/v1/now", params={"q": city})
    return r.json()


def list_events(day: str) -> list:
    r = httpx.get("https://calendar.example/api/events", params={"day": day}, timeout=None)  # expect: TH305
    return r.json()


TOOLS = {"get_weather": get_weather, "list_events": list_events}
SCHEMAS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "list_events", "parameters": {"type": "object"}}},
]


def run_agent(question: str) -> str:  # expect: TH103
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": question},
    ]
    while True:
        resp = client.chat.completions.create(model="gpt-4o", messages=messages, tools=SCHEMAS)  # expect: TH101 TH401
        msg = resp.choices[0].message
        messages.append(msg)  # expect: TH201
        if not msg.tool_calls:
            return msg.content
        for call in msg.tool_calls:
            args = json.loads(call.function.arguments)
            result = TOOLS[call.function.name](**args)  # expect: TH102
            messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})


if __name__ == "__main__":
    print(run_agent("Do I need an umbrella for my 3pm meeting?"))
