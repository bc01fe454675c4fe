"""A blank translator URL is no translator, for the API's check and the nodes' client alike
(they once disagreed: the API accepted languages the node could not translate to)."""

from __future__ import annotations

from analysis.campaigns.translate import translator_from_settings
from control_plane.campaigns.service import translation_available
from reelfarm.settings import Settings


def test_blank_urls_are_unset_for_every_reader(tmp_path):
    blank = Settings(data_dir=tmp_path, translate_url="  ", llm_base_url="")
    assert blank.translate_url is None and blank.llm_base_url is None
    assert not translation_available(blank) and translator_from_settings(blank) is None
    served = Settings(data_dir=tmp_path, translate_url=" http://127.0.0.1:9/ ")
    assert translation_available(served)
    translator = translator_from_settings(served)
    assert translator is not None and translator.url == "http://127.0.0.1:9/translate"
    translator.close()
