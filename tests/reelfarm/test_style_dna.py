"""reelfarm/style_dna.py: 003's style_json, strict about what a template may say."""

import pytest
from pydantic import ValidationError

from reelfarm.style_dna import StyleDNA

SEED_EXAMPLE = {  # ../shared/seeds/003, GET /api/v1/jobs/{id}/result
    "version": "1.0",
    "color_grade": {"temperature": 10, "tint": 5, "saturation": 20, "contrast": 15, "highlights": 10, "shadows": -5},
    "aspect_ratio": "16:9",
    "frame_rate": 30,
    "audio_style": {"normalization_level": 0.85, "compression_ratio": 4.0, "bass_boost": 20, "enhance_speech": True},
    "cut_frequency": 3.5,
    "motion_intensity": 65,
    "zoom_usage": 30,
    "primary_transition": {"type": "fade", "duration_ms": 300, "easing": "ease-in-out"},
    "detected_beats": [{"timestamp_ms": 0, "confidence": 0.95, "frequency": "bass"}],
    "tempo_bpm": 120.0,
    "music_genre": "pop",
    "created_at": "2024-04-05T10:30:00Z",
    "source_duration_seconds": 60.0,
    "extraction_confidence": 0.92,
}


def test_the_documented_example_round_trips_in_its_own_shape():
    dna = StyleDNA.model_validate(SEED_EXAMPLE)
    out = dna.as_json()
    assert list(out) == list(SEED_EXAMPLE)  # the documented field order
    assert out["color_grade"] == SEED_EXAMPLE["color_grade"]
    assert out["detected_beats"] == SEED_EXAMPLE["detected_beats"]
    assert out["created_at"].startswith("2024-04-05T10:30:00")


def test_a_template_may_name_only_what_it_applies():
    dna = StyleDNA.model_validate({"color_grade": {"temperature": 40}})
    assert dna.color_grade.temperature == 40 and dna.color_grade.saturation == 0
    assert dna.audio_style is None and dna.cut_frequency is None


@pytest.mark.parametrize(("document", "field"), [
    ({"color_grade": {"temperature": 140}}, "color_grade.temperature"),
    ({"color_grade": {"warmth": 10}}, "color_grade.warmth"),
    ({"primary_transition": {"type": "wipe", "duration_ms": 300}}, "primary_transition.type"),
    ({"audio_style": {"normalization_level": 2, "compression_ratio": 4, "bass_boost": 0, "enhance_speech": False}},
     "audio_style.normalization_level"),
    ({"aspect_ratio": "wide"}, "aspect_ratio"),
    ({"tempo_bpm": -3}, "tempo_bpm"),
    ({"detected_beats": [{"timestamp_ms": 5, "confidence": 0.5, "frequency": "sub"}]}, "detected_beats.0.frequency"),
    ({"colour_grade": {}}, "colour_grade"),
])  # fmt: skip
def test_a_wrong_field_is_named(document, field):
    with pytest.raises(ValidationError) as failed:
        StyleDNA.model_validate(document)
    assert field in {".".join(str(p) for p in error["loc"]) for error in failed.value.errors()}
