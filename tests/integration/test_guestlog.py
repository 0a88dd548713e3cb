"""Issue 9 item 9: every line a VM worker logs names its user and pid,
whether the VM was cloned for the login or resumed from disk."""
import re

from sshharness import Server


def test_worker_lines_name_user_and_pid(tmp):
    """A clone's worker logs as clone[vm alice PID]; so does the worker
    that resumes her suspended VM (a guest line through the agent's LOG
    shows it: root in her VM asks the agent to power off)."""
    s = Server(tmp, detach=3, root=True)
    try:
        st, out, _ = s.ssh("alice", "echo hi")
        assert (st, out) == (0, "hi\n"), s.log.text()[-1500:]
        workers = s.workers()
        m = re.search(r"clone\[vm alice (\d+)\]: guest identity applied",
                      s.log.text())
        assert m, s.log.text()[-1500:]
        assert int(m.group(1)) in workers, (m.group(0), workers)

        s.wait_state("alice", "suspended", 60)
        s.ssh("alice", "kill -USR2 1; sleep 30")   # busybox poweroff
        r = s.log.expect(r"clone\[vm alice (\d+)\]: guest: powering off",
                         60)
        assert "vm alice: resumed" in s.log.text()
        assert r.group(1) != m.group(1), "the resume is a new worker's"
        # No worker line without its user (a pool worker not yet given
        # one names its pid alone).
        for line in s.log.text().splitlines():
            if line.startswith("clone[vm") or line.startswith("clone[worker"):
                assert re.match(r"clone\[vm ([a-z_][a-z0-9_-]* )?\d+\]: ",
                                line), line
    finally:
        s.close()
