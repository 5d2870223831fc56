"""Meeting-notes summariser on Gemini (google-genai) behind a Flask app."""

from flask import Flask, request
from google import genai
from google.genai import types

app = Flask(__name__)
client = genai.Client()
timed = genai.Client(http_options=types.HttpOptions(timeout=30_000))
chat_log = []


@app.post("/summarize")
def summarize():
    notes = request.get_json()["notes"]
    response = client.models.generate_content(  # expect: TH101 TH304 TH401
        model="gemini-2.5-flash",
        contents=notes,
        config=types.GenerateContentConfig(temperature=0.2),
    )
    return {"summary": response.text}


@app.post("/chat")
def chat():
    text = request.get_json()["text"]
    chat_log.append(types.Content(role="user", parts=[types.Part(text=text)]))  # expect: TH202
    response = client.models.generate_content(model="gemini-2.5-flash", contents=chat_log)  # expect: TH101 TH304 TH401
    chat_log.append(response.candidates[0].content)
    return {"reply": response.text}


def title(text: str) -> str:
    try:
        return timed.models.generate_content(model="gemini-2.5-flash", contents="Title: " + text).text  # expect: TH101 TH401
    except Exception:  # expect: TH308
        pass
    return "Untitled"
