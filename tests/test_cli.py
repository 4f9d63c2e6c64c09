"""The `gridmap` command as a user runs it: real process, real database, exit statuses."""
import os
import subprocess
import sys
import uuid

import pytest


def run(database, *args, input_text=None):
    env = dict(os.environ, GRIDMAP_DATABASE_URL=database)
    return subprocess.run([sys.executable, "-m", "gridmap.cli", *args], capture_output=True, text=True,
                          env=env, input=input_text, timeout=120)


def test_users_create_and_token(database):
    name = f"cli_{uuid.uuid4().hex[:6]}"
    created = run(database, "users", "create", name, "--role", "grid_worker", "--scope", "410421102204",
                  "--password", "long-enough-pw")
    assert created.returncode == 0, created.stderr
    assert "410421102204" in created.stdout
    token = run(database, "users", "token", name)
    assert token.returncode == 0 and token.stdout.strip().startswith("gm_")


@pytest.mark.parametrize("args, message", [
    (["--role", "wizard", "--scope", "410421102204"], "unknown role"),
    (["--role", "grid_worker"], "needs a scope"),
    (["--role", "grid_worker", "--scope", "999999999999"], "no known town"),
])
def test_bad_user_input_exits_2(database, args, message):
    result = run(database, "users", "create", f"bad_{uuid.uuid4().hex[:6]}", *args, "--password", "long-enough-pw")
    assert result.returncode == 2
    assert message in result.stderr


def test_token_for_unknown_user_exits_2(database):
    result = run(database, "users", "token", "nobody-here")
    assert result.returncode == 2 and "no user" in result.stderr
