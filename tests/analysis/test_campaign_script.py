"""Campaign scripts (analysis/campaigns/script.py) and their translation (translate.py).

The LLM and LibreTranslate paths run against real HTTP servers on 127.0.0.1 that the tests
script: an OpenAI-compatible chat-completions server and a LibreTranslate-compatible one.
"""

from __future__ import annotations

import json
import logging
import re
import socket

import pytest

from harness.json_server import JsonPostServer, chat_completion

from analysis.campaigns.script import (
    PageText,
    Script,
    ScriptError,
    estimate_seconds,
    fit_to,
    near_duplicate,
    split_sentences,
    write_script,
)
from analysis.campaigns.translate import (
    LibreTranslateTranslator,
    LlmTranslator,
    NoTranslatorError,
    TranslationError,
    Translator,
    languages_needing_translation,
    require_translator,
    translate_script,
    translator_from_settings,
)
from analysis.llm import LlmClient
from reelfarm.settings import Settings

PRODUCT_PAGE = PageText(
    title="Acme Render | Turn long videos into shorts in minutes",
    language="en-US",
    headings=["Turn long videos into shorts in minutes", "Captions that write themselves", "Pricing"],
    paragraphs=[
        (
            "Acme Render cuts your long videos into vertical clips automatically. "
            "You upload once and get ten ready-to-post shorts."
        ),
        "Our face tracking keeps every speaker in frame, so you never crop a head again.",
        "Burned-in captions are generated for you in seconds, with 98% accuracy on clear speech.",
        "Teams save 12 hours a week on editing compared to doing it by hand.",
        "Export to TikTok, YouTube Shorts and Instagram Reels with one click.",
        "Your files stay private and are deleted after 30 days.",
        "We use cookies to improve your experience. Accept all cookies?",
        "Founded in 2021, the company is based in Berlin.",
        "Plans start free, and you can upgrade whenever your channel grows.",
        "Render ten times faster on our GPU farm than on a laptop.",
        "Read more at https://acme.com/blog for the details.",
    ],
    calls_to_action=["Log in", "Pricing", "Start your free trial"],
    main_text=(
        "Turn long videos into shorts in minutes\n"
        "Acme Render cuts your long videos into vertical clips automatically. "
        "You upload once and get ten ready-to-post shorts.\n"
        "Our face tracking keeps every speaker in frame, so you never crop a head again."
    ),
    domain="www.acme.com",
)

JAPANESE_PAGE = PageText(
    title="アクメ動画｜長い動画を数分でショート動画に",
    language="ja",
    headings=["長い動画を数分でショート動画に", "字幕も自動で作成"],
    paragraphs=[
        (
            "アクメ動画は、長い動画を自動で縦型のショート動画に切り抜きます。一度アップロードするだけで、"
            "投稿できるショート動画が十本できあがります。"
        ),
        "顔の追跡機能で、話している人をいつも画面の中央にとらえます。",
        "字幕は数秒で自動作成され、はっきりした音声なら認識精度は98%です。",
        "編集にかかる時間を一週間に12時間も節約できます。",
        "TikTokやYouTubeショートへ、ワンクリックで書き出せます。",
        "アップロードしたファイルは非公開で、30日後に削除されるので安心です。",
        "無料プランから始めて、チャンネルの成長に合わせていつでもアップグレードできます。",
        "GPUファームでの書き出しは、ノートパソコンより10倍速く終わります。",
    ],
    calls_to_action=["ログイン", "無料で始める"],
    domain="acme.jp",
)


def words(text: str) -> int:
    return len(re.findall(r"[^\W_]+(?:['’\-.][^\W_]+)*", text))


def cjk_chars(text: str) -> int:
    return len(re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", text))


# ---------------------------------------------------------------------------------------
# Fake servers
# ---------------------------------------------------------------------------------------


FakeServer = JsonPostServer


def chat_answer(content) -> tuple[int, dict]:
    """A chat completion whose message content is `content` (a dict is sent as JSON text)."""
    return 200, chat_completion(content)


@pytest.fixture
def serve():
    servers = []

    def start(answer) -> FakeServer:
        server = FakeServer(answer)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


DICTIONARY_JA = {
    "Turn long videos into shorts in minutes.": "長い動画を数分でショート動画に。",
    "Teams save 12 hours a week on editing.": "チームは編集時間を週に12時間節約できます。",
    "Start your free trial at acme.com.": "acme.comで無料トライアルを始めましょう。",
}


def libretranslate(api_key: str | None = None):
    """A LibreTranslate server that knows DICTIONARY_JA (en -> ja)."""

    def answer(path, body):
        if path != "/translate" or not isinstance(body, dict):
            return 404, {"error": "Not Found"}
        if api_key is not None and body.get("api_key") != api_key:
            return 403, {"error": "Invalid API key"}
        if body.get("target") != "ja" or body.get("source") != "en":
            return 400, {"error": f"{body.get('target')} is not supported"}
        q = body["q"]
        if isinstance(q, str):
            return 200, {"translatedText": DICTIONARY_JA[q]}
        return 200, {"translatedText": [DICTIONARY_JA[line] for line in q]}

    return answer


# ---------------------------------------------------------------------------------------
# Sentences and the extractive script
# ---------------------------------------------------------------------------------------


def test_split_sentences_english_and_cjk():
    assert split_sentences("Dr. Smith renders daily, e.g. on Mondays. It costs $3.50 a month! Really? Yes.") == [
        "Dr. Smith renders daily, e.g. on Mondays.", "It costs $3.50 a month!", "Really?", "Yes."]  # fmt: skip
    assert split_sentences("動画を自動で切り抜きます。無料で始められます！本当？「はい。」続き\n• 次の行") == [
        "動画を自動で切り抜きます。", "無料で始められます！", "本当？", "「はい。」", "続き", "次の行"]  # fmt: skip
    assert split_sentences("视频自动剪辑。一键导出！") == ["视频自动剪辑。", "一键导出！"]


def test_english_product_page_script():
    script = write_script(PRODUCT_PAGE, llm=None)
    assert script.language == "en" and script.source == "extractive" and script.llm_error is None
    assert 30 <= script.estimated_seconds <= 45
    # The documented rate: 3.4 words/s (Piper's) plus 0.35 s between lines.
    lines = script.lines
    assert script.estimated_seconds == pytest.approx(sum(words(x) for x in lines) / 3.4 + 0.35 * (len(lines) - 1),
                                                     abs=0.01)  # fmt: skip
    # Opens with the title (site name dropped), ends with the page's call to action and domain.
    assert lines[0] == "Turn long videos into shorts in minutes."
    assert lines[-1] == "Start your free trial at acme.com."
    # No duplicates, no boilerplate or links, the strongest benefits are in.
    assert all(not near_duplicate(a, b, "en") for k, a in enumerate(lines) for b in lines[k + 1 :])
    text = script.text
    assert "cookies" not in text.lower() and "http" not in text  # boilerplate and links are never candidates
    assert "Teams save 12 hours a week on editing compared to doing it by hand." in script.sentences
    assert "Burned-in captions are generated for you in seconds, with 98% accuracy on clear speech." in text
    assert len(script.sentences) >= 4
    assert Script.from_dict(json.loads(json.dumps(script.to_dict()))) == script


def test_sentences_are_trimmed_to_the_upper_bound_and_padded_to_the_lower():
    short = write_script(PRODUCT_PAGE, llm=None, target_seconds=(15, 20))
    assert 15 <= short.estimated_seconds <= 20
    full = write_script(PRODUCT_PAGE, llm=None)
    assert len(short.sentences) < len(full.sentences)


def test_without_a_call_to_action_the_video_ends_with_the_domain():
    page = PageText(**{**PRODUCT_PAGE.__dict__, "calls_to_action": ["Log in", "Pricing"]})
    assert write_script(page, llm=None).call_to_action == "Visit acme.com."
    only_brand = PageText(**{**PRODUCT_PAGE.__dict__, "title": "Acme", "headings": []})
    assert write_script(only_brand, llm=None).title == "Meet Acme."


def test_japanese_page_splits_on_maru_and_times_by_characters():
    script = write_script(JAPANESE_PAGE, llm=None)
    assert script.language == "ja"
    assert 30 <= script.estimated_seconds <= 45
    assert script.title == "長い動画を数分でショート動画に。"
    assert script.call_to_action == "無料で始める：acme.jp。"
    # Paragraphs of two sentences were split at 。 and every spoken sentence ends with one.
    assert "一度アップロードするだけで、投稿できるショート動画が十本できあがります。" in script.sentences
    assert all(s.endswith("。") and s.count("。") == 1 for s in script.sentences)

    # Characters, not words: 6.5 characters/s (Kokoro's); a Latin word or number counts as half its
    # letters (at least 2).
    def units(line: str) -> float:
        return cjk_chars(line) + sum(max(2, -(-len(run) // 2)) for run in re.findall(r"[0-9A-Za-z]+", line))

    lines = script.lines
    assert script.estimated_seconds == pytest.approx(sum(units(x) for x in lines) / 6.5 + 0.35 * (len(lines) - 1),
                                                     abs=0.01)  # fmt: skip
    # The language is read from the text when the page does not declare one.
    assert write_script(PageText(**{**JAPANESE_PAGE.__dict__, "language": ""}), llm=None).language == "ja"


def test_too_little_text_is_a_readable_error():
    page = PageText(title="Acme", language="en", paragraphs=["Coming soon.", "We render videos for you."],
                    calls_to_action=["Notify me"], domain="acme.com")  # fmt: skip
    with pytest.raises(ScriptError, match=r"too little text for a 30-45 s video.*about \d+ s of speech"):
        write_script(page, llm=None)
    with pytest.raises(ValueError, match="target_seconds"):
        write_script(PRODUCT_PAGE, llm=None, target_seconds=(45, 30))


# ---------------------------------------------------------------------------------------
# The LLM's script
# ---------------------------------------------------------------------------------------

LLM_SCRIPT = {
    "title": "Stop editing clips by hand",
    "sentences": [
        "Acme Render turns one long video into ten vertical shorts while you do something else.",
        "Face tracking keeps every speaker in the frame, so no head ever gets cropped.",
        "Captions are written for you in seconds, with ninety-eight percent accuracy on clear speech.",
        "Teams using it save about twelve hours of editing every single week.",
        "Exports go straight to TikTok, YouTube Shorts and Instagram Reels with one click.",
        "Your files stay private and disappear after thirty days.",
        "Plans start free, and you can upgrade the moment your channel starts to grow.",
        "Renders run ten times faster on our GPU farm than they would on your laptop.",
    ],
    "call_to_action": "Start your free trial today at acme.com.",
}


def test_llm_script_is_used_when_valid(serve):
    server = serve(lambda path, body: chat_answer(LLM_SCRIPT))
    with LlmClient(server.url + "/v1", "sk-test", "test-model", timeout=5) as client:
        script = write_script(PRODUCT_PAGE, llm=client)
    assert script.source == "llm" and script.llm_error is None
    assert script.title == "Stop editing clips by hand."
    assert script.sentences == LLM_SCRIPT["sentences"]
    assert script.call_to_action == LLM_SCRIPT["call_to_action"]
    assert 30 <= script.estimated_seconds <= 45
    assert script.estimated_seconds == estimate_seconds(script.lines, "en")
    # One JSON-mode request carrying the page and the language.
    [request] = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["json"]
    assert body["model"] == "test-model" and body["response_format"] == {"type": "json_object"}
    user = json.loads(body["messages"][1]["content"])
    assert "English" in user["task"] and user["page"]["domain"] == "acme.com"
    assert "Start your free trial" in user["page"]["calls_to_action"]


@pytest.mark.parametrize("answer, reason", [
    (chat_answer({**LLM_SCRIPT, "sentences": ["Too short.", "Render it now."]}), "outside 30-45 s"),
    (chat_answer({**LLM_SCRIPT, "sentences": LLM_SCRIPT["sentences"][:3] * 2}), "repeats an earlier one"),
    (chat_answer({**LLM_SCRIPT, "sentences": ["長い動画を数分でショート動画にします。"] * 1 + ["顔を追跡します。"]}),
     "not written in English"),
    (chat_answer({"script": "Here you go"}), "no list of sentences"),
    (chat_answer("I cannot help with that."), "no JSON object"),
    ((500, {"error": "overloaded"}), "HTTP 500"),
])  # fmt: skip
def test_invalid_llm_script_falls_back_to_extractive(serve, caplog, answer, reason):
    server = serve(lambda path, body: answer)
    with LlmClient(server.url + "/v1", None, "test-model", timeout=5) as client, caplog.at_level(logging.WARNING):
        script = write_script(PRODUCT_PAGE, llm=client)
    assert len(server.requests) == 1
    assert script.source == "extractive" and reason in script.llm_error
    assert script.sentences == write_script(PRODUCT_PAGE, llm=None).sentences
    assert any("LLM script failed" in r.getMessage() and reason in r.getMessage() for r in caplog.records)


def test_llm_script_in_the_pages_language(serve):
    answer = {
        "title": "長い動画を、数分でショートに",
        "sentences": [s for s in JAPANESE_PAGE.paragraphs[1:8]],
        "call_to_action": "acme.jpで無料で始めましょう",
    }
    server = serve(lambda path, body: chat_answer(answer))
    with LlmClient(server.url + "/v1", None, "m", timeout=5) as client:
        script = write_script(JAPANESE_PAGE, llm=client)
    assert script.source == "llm" and script.language == "ja", script.llm_error
    assert script.title == "長い動画を、数分でショートに。" and script.call_to_action.endswith("。")
    assert "Japanese" in json.loads(server.requests[0]["json"]["messages"][1]["content"])["task"]


def test_too_little_text_is_refused_before_asking_the_llm(serve):
    server = serve(lambda path, body: chat_answer(LLM_SCRIPT))
    page = PageText(title="Acme", language="en", paragraphs=["Coming soon."], domain="acme.com")
    with LlmClient(server.url + "/v1", None, "m", timeout=5) as client, pytest.raises(ScriptError):
        write_script(page, llm=client)
    assert server.requests == []


# ---------------------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------------------

THREE = list(DICTIONARY_JA)


def test_libretranslate_translates_three_sentences_in_order(serve):
    server = serve(libretranslate(api_key="lt-key"))
    with LibreTranslateTranslator(server.url + "/", api_key="lt-key", timeout=5) as translator:
        assert isinstance(translator, Translator)
        out = translator.translate(THREE, "en", "ja")
    assert out == [DICTIONARY_JA[s] for s in THREE]
    [request] = server.requests
    assert request["path"] == "/translate"
    assert request["json"] == {"q": THREE, "source": "en", "target": "ja", "format": "text", "api_key": "lt-key"}


def test_translate_script_keeps_lines_and_re_estimates_by_characters(serve):
    server = serve(libretranslate())
    script = Script("en", THREE[0], [THREE[1]], THREE[2], estimate_seconds(THREE, "en"))
    with LibreTranslateTranslator(server.url, timeout=5) as translator:
        ja = translate_script(script, "ja-JP", translator)
        assert translate_script(script, "en", translator) is script
    assert ja.language == "ja" and ja.translated_from == "en" and ja.source == "extractive+libretranslate"
    assert ja.lines == [DICTIONARY_JA[s] for s in THREE]
    assert ja.estimated_seconds == estimate_seconds(ja.lines, "ja")
    assert "api_key" not in server.requests[0]["json"]


def test_translator_errors_are_readable(serve):
    server = serve(libretranslate(api_key="right"))
    forbidden = r"LibreTranslate .* refused English -> Japanese: HTTP 403: Invalid API key"
    with LibreTranslateTranslator(server.url, api_key="wrong", timeout=5) as translator, pytest.raises(
            TranslationError, match=forbidden):  # fmt: skip
        translator.translate(THREE, "en", "ja")
    with LibreTranslateTranslator(server.url, api_key="right", timeout=5) as translator, pytest.raises(
            TranslationError, match="HTTP 400: ko is not supported"):  # fmt: skip
        translator.translate(THREE, "en", "ko")
    # A server that answers the wrong number of lines, or the text untranslated.
    short = serve(lambda path, body: (200, {"translatedText": ["一行だけ。"]}))
    with LibreTranslateTranslator(short.url, timeout=5) as translator, pytest.raises(
            TranslationError, match=r"answered 1 line\(s\) for 3"):  # fmt: skip
        translator.translate(THREE, "en", "ja")
    echo = serve(lambda path, body: (200, {"translatedText": body["q"]}))
    with LibreTranslateTranslator(echo.url, timeout=5) as translator:
        with pytest.raises(TranslationError, match="not written in Japanese"):
            translator.translate(THREE, "en", "ja")
        with pytest.raises(TranslationError, match="English text untranslated"):
            translator.translate(THREE, "en", "de")
    # Nobody listening.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with LibreTranslateTranslator(f"http://127.0.0.1:{port}", timeout=2) as translator, pytest.raises(
            TranslationError, match="could not be reached"):  # fmt: skip
        translator.translate(THREE, "en", "ja")


def test_llm_translator(serve):
    def answer(path, body):
        lines = json.loads(body["messages"][1]["content"])["lines"]
        return chat_answer({"translations": [DICTIONARY_JA[item["text"]] for item in lines]})

    server = serve(answer)
    with LlmClient(server.url + "/v1", None, "m", timeout=5) as client:
        translator = LlmTranslator(client)
        assert translator.translate(THREE, "en", "ja") == [DICTIONARY_JA[s] for s in THREE]
        user = json.loads(server.requests[0]["json"]["messages"][1]["content"])
        assert "Japanese" in user["target_language"] and len(user["lines"]) == 3

    wrong = serve(lambda path, body: chat_answer({"translations": ["一行だけ。", "二行目。"]}))
    with LlmClient(wrong.url + "/v1", None, "m", timeout=5) as client, pytest.raises(
            TranslationError, match=r"the LLM \(m\) answered 2 line\(s\) for 3"):  # fmt: skip
        LlmTranslator(client).translate(THREE, "en", "ja")
    down = serve(lambda path, body: (503, {"error": "down"}))
    with LlmClient(down.url + "/v1", None, "m", timeout=5) as client, pytest.raises(
            TranslationError, match="could not translate to Japanese: HTTP 503"):  # fmt: skip
        LlmTranslator(client).translate(THREE, "en", "ja")


def test_without_a_translator_only_the_pages_language(tmp_path):
    settings = Settings(environment="test", data_dir=tmp_path, translator="auto", llm_base_url=None, translate_url=None)
    assert translator_from_settings(settings) is None
    assert languages_needing_translation(["en", "ja", "ko", "en-US", "ja-JP"], "en-GB") == ["ja", "ko"]
    assert languages_needing_translation(["en"], "en") == []
    assert require_translator(["en-US"], "en", None) == []
    with pytest.raises(NoTranslatorError) as caught:
        require_translator(["en", "ja", "ko"], "en", None)
    assert caught.value.languages == ["ja", "ko"]
    message = str(caught.value)
    assert "cannot make videos in ja, ko" in message and "REELFARM_TRANSLATE_URL" in message
    assert "only en is available" in message


def test_translator_from_settings(tmp_path):
    def settings(**kw) -> Settings:  # every field given, so the environment cannot interfere
        return Settings(**{"environment": "test", "data_dir": tmp_path, "translator": "auto", "translate_url": None,
                           "translate_api_key": None, "llm_base_url": None, **kw})  # fmt: skip

    lt = {"translate_url": "http://127.0.0.1:5000", "translate_api_key": "lt"}
    libre = translator_from_settings(settings(**lt, llm_base_url="http://127.0.0.1:1/v1"))
    assert isinstance(libre, LibreTranslateTranslator)
    assert libre.url == "http://127.0.0.1:5000/translate" and libre.api_key == "lt"
    libre.close()
    llm = translator_from_settings(settings(**lt, llm_base_url="http://127.0.0.1:1/v1", translator="llm"))
    assert isinstance(llm, LlmTranslator) and llm.client.url == "http://127.0.0.1:1/v1/chat/completions"
    llm.close()
    auto_llm = translator_from_settings(settings(llm_base_url="http://127.0.0.1:1/v1"))
    assert isinstance(auto_llm, LlmTranslator)
    auto_llm.close()
    assert translator_from_settings(settings(**lt, translator="none")) is None
    with pytest.raises(ValueError, match="REELFARM_TRANSLATE_URL"):
        translator_from_settings(settings(translator="libretranslate"))


def test_a_script_too_long_for_its_window_loses_body_sentences_from_its_end():
    long = Script("en", "Notes that organise themselves.", [f"Sentence number {n} says something useful." for n in range(20)],
                  "Visit acme.com.", 0.0)  # fmt: skip
    fitted = fit_to(long, 20.0)
    assert fitted.title == long.title and fitted.call_to_action == long.call_to_action
    assert fitted.sentences == long.sentences[: len(fitted.sentences)] and 0 < len(fitted.sentences) < 20
    assert fitted.estimated_seconds == estimate_seconds(fitted.lines, "en") <= 20.0
    more = estimate_seconds([long.title, *long.sentences[: len(fitted.sentences) + 1], long.call_to_action], "en")
    assert more > 20.0  # as many as fit, not fewer
    assert fit_to(fitted, 20.0) is fitted
