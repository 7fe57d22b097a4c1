"""A storm of per-peer tasks cannot end a py-libp2p service (`_containment`, lever 13).

Connection churn at 20/s made py-libp2p's Pubsub start more registration tasks than its task
manager allows (1,000 children); the manager's refusal, raised inside the daemon that starts
them, ended the service and the node. Here the library's own `TrioManager` runs a service that
does what Pubsub's `handle_peer_queue` does, with a limit of 5 so the storm is small.
"""

import trio
import trio.testing
from libp2p.peer.id import ID
from libp2p.tools.anyio_service import Service
from libp2p.tools.anyio_service.trio_manager import TrioManager

from lilypad_p2p.net._containment import contain_service_tasks

LIMIT = 5
STORM = 20


class _Storming(Service):
    def __init__(self) -> None:
        self.started = 0
        self.stormed = trio.Event()

    async def run(self) -> None:
        contain_service_tasks(self.manager, lambda peer, where, error: None)
        self.manager.run_daemon_task(self._queue)
        await self.manager.wait_finished()

    async def _queue(self) -> None:
        for index in range(STORM):
            self.manager.run_task(self._register, ID(bytes([index])))
        self.stormed.set()
        await trio.sleep_forever()

    async def _register(self, peer: ID) -> None:
        self.started += 1
        await trio.sleep_forever()


async def test_tasks_past_the_manager_limit_are_dropped_and_the_service_lives_on():
    service = _Storming()
    manager = TrioManager(service, max_children_per_task=LIMIT)
    service._manager = manager
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        await manager.wait_started()
        with trio.fail_after(10):
            await service.stormed.wait()
        await trio.testing.wait_all_tasks_blocked()  # the started tasks have run
        assert manager.is_running and not manager.did_error
        assert service.started == LIMIT
        await manager.stop()
