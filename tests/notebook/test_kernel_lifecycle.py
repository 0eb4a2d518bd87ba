"""In-kernel servers live and die with their kernel: a restart or a shutdown stops them
cleanly (the port is free and the server's registry record is gone, so the stop hook ran
rather than the process merely dying)."""

from __future__ import annotations

from netcheck import free_port, port_is_free

from .conftest import TRAIN, Kernel, shown_url


def test_restart_and_shutdown_stop_the_kernels_servers(tmp_path, bento_home):
    servers_dir = bento_home / "jupyter_runtime" / "bento_nb" / "servers"
    kernel = Kernel(tmp_path)  # inherits the test's BENTO_NB_HOME / JUPYTER_RUNTIME_DIR
    try:
        kernel.run(TRAIN)
        port, other = free_port(), free_port()
        _, shown = shown_url(kernel.magic(f"serve clf --port {port}"))
        _, shown_other = shown_url(kernel.run(f"%bento pack clf --name Life\n%bento serve Life --port {other}"))
        assert (shown, shown_other) == (port, other)
        first_pid = kernel.pid
        assert {p.name for p in servers_dir.iterdir()} == {f"{first_pid}-{port}.json",
                                                          f"{first_pid}-{other}.json"}

        kernel.restart()
        assert kernel.pid != first_pid
        assert port_is_free(port) and port_is_free(other)
        assert list(servers_dir.iterdir()) == []

        kernel.run(TRAIN)
        _, again = shown_url(kernel.magic(f"serve clf --port {port}"))
        assert again == port  # the old kernel let it go: no move to another port
    finally:
        kernel.shutdown()
    assert port_is_free(port)
    assert list(servers_dir.iterdir()) == []
