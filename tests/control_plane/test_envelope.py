"""Error bodies per family: v1's envelope, the dev API's codes (002), bare `{error}` elsewhere."""

from control_plane.envelope import error_body


def test_dev_errors_carry_the_documented_codes():
    assert error_body("/api/dev/upload-video", "file required", 400) == {"error": "file required",
                                                                        "code": "bad_request"}  # fmt: skip
    assert error_body("/api/dev/process-video-result", "call not found", 404)["code"] == "not_found"
    assert error_body("/api/dev/create-project", "internal server error", 500)["code"] == "server_error"
    assert error_body("/api/dev/create-project", "upstream", 502)["code"] == "server_error"
    assert error_body("/api/dev/x", "slow down", 429)["code"] == "too_many_requests"


def test_other_families_keep_their_shapes():
    assert error_body("/api/v1/jobs", "job not found", 404) == {"success": False, "error": "job not found"}
    assert error_body("/api/jobs/x", "job not found", 404) == {"error": "job not found"}
