from labsupport import doctor


def test_one_line_per_concern_and_a_fix_for_each_warning():
    lines = doctor.run_checks()
    whats = {line.what for line in lines}
    assert {"torch", "NVML", "/dev/shm", "redis-server"} <= whats
    assert "GPU" in whats or "driver" in whats
    for line in lines:
        assert line.status in ("OK", "WARN", "INFO")
        if line.status == "WARN":
            assert line.fix, f"{line.what} warns without saying how to fix it"
            assert "fix:" in str(line)
