"""The key file and ``python -m mlapi.keys``: clear errors, keys that work, only hashes kept."""

import hashlib
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mlapi.keys import KeyFileError, key_line, load_keys, parse_keys
from mlapi.main import create_app
from mlapi.settings import Settings, describe_settings_error

HASH = "sha256:" + "ab" * 32


def keys_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlapi.keys", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_file_of_keys_comments_and_blank_lines_is_read() -> None:
    keys = parse_keys(f"# rotated 2026-01\n\npredict,feedback {HASH} plant\nmetrics {HASH[:-1]}c\n")
    assert [(sorted(k.scopes), k.name) for k in keys] == [
        (["feedback", "predict"], "plant"),
        (["metrics"], "key-abababab"),
    ]
    assert keys[0].digest == bytes.fromhex("ab" * 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"predcit {HASH}", "line 1: unknown scope(s) 'predcit'; scopes are predict, feedback"),
        (f"predict,,read {HASH}", "line 1: unknown scope(s) ''"),
        ("predict mlapi_the-key-itself", "line 1: the second field must be sha256: and 64"),
        (f"predict {HASH.upper()}", "line 1: the second field must be sha256:"),
        (f"predict {HASH[:-2]}", "line 1: the second field must be sha256:"),
        (f"predict {HASH} plant\nread {HASH} other", "line 2: the same key is on an earlier line"),
        (f"predict {HASH} plant extra", "line 1: expected SCOPE[,SCOPE...] sha256:HEX [NAME]"),
        ("predict", "line 1: expected SCOPE[,SCOPE...] sha256:HEX [NAME]"),
        (f"\n# c\npredict {HASH} pl/ant", "line 3: a name is 1-64 letters, digits or . _ @ -"),
    ],
)
def test_a_bad_line_is_refused_naming_it_without_echoing_it(text: str, message: str) -> None:
    with pytest.raises(KeyFileError) as refused:
        parse_keys(text)
    assert str(refused.value).startswith(message)
    assert "the-key-itself" not in str(refused.value)


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "api-keys"
    empty.write_text("# nothing yet\n")
    with pytest.raises(KeyFileError, match="holds no key; add one"):
        load_keys(empty)
    with pytest.raises(KeyFileError, match=r"cannot read .*missing"):
        load_keys(tmp_path / "missing")


def test_the_settings_refuse_no_keys_without_the_explicit_opt_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLAPI_API_KEYS_FILE")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert describe_settings_error(refused.value).startswith(
        "MLAPI_API_KEYS_FILE: Value error, is required (or MLAPI_API_KEYS, the file's content)"
    )
    assert Settings(auth="disabled").api_keys_file is None
    monkeypatch.setenv("MLAPI_AUTH", "Disabled")
    assert Settings().auth == "disabled"
    with pytest.raises(ValidationError, match="MLAPI_AUTH=disabled: unset one of them"):
        Settings(api_keys_file=tmp_path / "api-keys")
    monkeypatch.setenv("MLAPI_AUTH", "off")
    with pytest.raises(ValidationError, match="auth"):
        Settings(api_keys_file=tmp_path / "api-keys")


def test_a_new_key_prints_its_line_and_authenticates(tmp_path: Path, clean_env: None) -> None:
    # Given a key made by the command, its line appended to a key file
    made = keys_command("new", "--scopes", "predict,feedback", "--name", "plant-2026")
    assert made.returncode == 0, made.stderr
    key = made.stderr.strip().rsplit(" ", 1)[1]
    line = made.stdout.strip()
    assert line == f"predict,feedback sha256:{hashlib.sha256(key.encode()).hexdigest()} plant-2026"
    assert key.startswith("mlapi_")
    assert len(key) == len("mlapi_") + 43  # 32 random bytes, URL-safe base64
    path = tmp_path / "api-keys"
    path.write_text(line + "\n")
    # Then the file holds no key, and the key predicts but does not read the log
    assert key not in path.read_text()
    with TestClient(create_app(Settings(api_keys_file=path))) as client:
        auth = {"Authorization": f"Bearer {key}"}
        body = {"inputs": [{"A6": 38}]}
        assert client.post("/api/v1/predict", json=body, headers=auth).status_code == 200
        found = client.get("/api/v1/predictions/0193a5c2-7e41-7c3a-9d51-4f2b8e0a6c11", headers=auth)
        assert found.status_code == 403


def test_new_writes_the_key_to_a_private_file_and_never_over_one(tmp_path: Path) -> None:
    key_file = tmp_path / "plant.key"
    made = keys_command("new", "--scopes", "read", "--key-file", str(key_file))
    assert made.returncode == 0, made.stderr
    assert made.stderr == ""
    key = key_file.read_text().strip()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert made.stdout.split()[1] == f"sha256:{hashlib.sha256(key.encode()).hexdigest()}"
    again = keys_command("new", "--scopes", "read", "--key-file", str(key_file))
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert key_file.read_text().strip() == key


def test_new_refuses_an_unknown_scope() -> None:
    made = keys_command("new", "--scopes", "predict,admin")
    assert made.returncode == 1
    assert made.stdout == ""
    assert "unknown scope(s) 'admin'; scopes are predict, feedback, read, metrics" in made.stderr


def test_check_lists_the_keys_or_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "api-keys"
    path.write_text(f"predict,read {HASH} plant\n")
    assert keys_command("check", str(path)).stdout == "plant: predict,read\n"
    path.write_text(f"predict {HASH}\nnope\n")
    checked = keys_command("check", str(path))
    assert checked.returncode == 1
    assert "line 2: expected" in checked.stderr


def test_init_makes_the_keys_once(tmp_path: Path) -> None:
    keys_file, client, scraper = tmp_path / "api-keys", tmp_path / "client", tmp_path / "metrics"
    args = [str(keys_file), "--client-key", str(client), "--metrics-key", str(scraper)]
    # When run twice, as on every start of the stack
    assert keys_command("init", *args).returncode == 0
    first = keys_file.read_text(), client.read_text(), scraper.read_text()
    assert keys_command("init", *args).returncode == 0
    # Then the keys of the first run stand, each with its scopes
    assert (keys_file.read_text(), client.read_text(), scraper.read_text()) == first
    by_digest = {k.digest: k for k in load_keys(keys_file)}
    for path, scopes, name in (
        (client, {"predict", "feedback", "read"}, "client"),
        (scraper, {"metrics"}, "prometheus"),
    ):
        key = by_digest[hashlib.sha256(path.read_text().strip().encode()).digest()]
        assert (key.scopes, key.name) == (scopes, name)
    assert stat.S_IMODE(client.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["api-keys", "client", "metrics"]


def test_the_key_file_s_content_may_come_in_a_variable_instead(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As ECS gives a secret to a container: the variable holds the file's content
    monkeypatch.delenv("MLAPI_API_KEYS_FILE")
    key = "mlapi_from-a-secret"
    monkeypatch.setenv(
        "MLAPI_API_KEYS", f"# from Secrets Manager\n{key_line(key, ['read'], 'x')}\n"
    )
    with TestClient(create_app(Settings())) as client:
        answer = client.get("/api/v1/model", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200
        assert client.get("/api/v1/model").status_code == 401
    # Refused: both at once, and a bad line, named without echoing the value
    with pytest.raises(ValidationError, match="MLAPI_API_KEYS too: set only one"):
        Settings(api_keys_file=tmp_path / "api-keys")
    monkeypatch.setenv("MLAPI_API_KEYS", "predict mlapi_pasted-key")
    with pytest.raises(ValidationError) as refused:
        Settings()
    described = describe_settings_error(refused.value)
    assert described.startswith("MLAPI_API_KEYS: Value error, line 1: the second field must be")
    assert "pasted" not in described
