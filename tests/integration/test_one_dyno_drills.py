"""The fault drills of test_fault_drills.py on the one-dyno formation: the Procfile's
``web`` line (scripts/dyno.py: the web server and the Celery worker with embedded
beat in one dyno) on a private PostgreSQL alone, the cache in the database and the
broker in the dyno's folder, against the sandbox Instagram, while a load generator
requests the token URLs and, once every feed has its first snapshot, the feed URLs:

(b) the worker inside the dyno is killed with SIGKILL in the middle of a refresh;
    the launcher starts it again while the web server goes on serving;
(c) Instagram fails every call for a while;
(d) PostgreSQL stops for five seconds and starts again: the cache is in it, so every
    request that is not answered from a web process's short copy fails meanwhile;
    the count is reported.

(Redis' outage, drill (a), has no counterpart: there is no Redis.) The same checks
follow: every account holds a token Instagram accepts, every due account was
refreshed, no stored token went back, and no 5xx outside (d). Run alone:
``pytest tests/integration/test_one_dyno_drills.py -s``; about three minutes.
"""

import os
import shutil

import pytest

from harness import procfile_stack as stack
from tests.integration import test_fault_drills as drills

# The drills, collected here again on this module's fixture, in their order.
test_b_worker_killed_mid_refresh_and_restarted = (
    drills.test_b_worker_killed_mid_refresh_and_restarted
)
test_c_instagram_fails_every_call_for_a_while = drills.test_c_instagram_fails_every_call_for_a_while
test_d_postgres_restarts = drills.test_d_postgres_restarts
test_afterwards_every_account_holds_a_working_token_and_none_went_back = (
    drills.test_afterwards_every_account_holds_a_working_token_and_none_went_back
)

# The first test also waits for the stack and every account's first feed sync.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.worker, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def drill(tmp_path_factory, request):
    drills._require(
        stack.postgres_bindir() is not None, "PostgreSQL's initdb (apt-get install postgresql)"
    )
    drills._require(
        os.geteuid() != 0 or shutil.which("runuser") is not None, "runuser to run postgres as root"
    )
    yield from drills.run_drill(tmp_path_factory, request, one_dyno=True)
