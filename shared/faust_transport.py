"""Faust's Kafka transport with its consumer on the service's own event loop.

Faust runs aiokafka's consumer in a thread of its own, with a second event
loop, and hands every fetch, commit and seek across through a method queue.
A service here does all its work in one loop anyway (its agents await the
database, not the CPU), so the thread buys nothing and costs on every fetch:
a queue hop each way, a wake-up of the other loop, and the two threads taking
turns at the interpreter lock. Profiles put the two loops and the hand-over
at a sixth of a service's CPU at moderate rates (docs/performance.md, "Tenth
change"). `ConsumerOnTheLoop` keeps Faust's consumer logic (fetching,
commits, rebalance callbacks, its health checks) and runs it where the agents
run: a call "into the thread" is a plain await, and the service starts and
stops like any other mode service.

What this asks of the code on the loop: never to hold it for long without
awaiting, since the group's heartbeats now share it (they are sent every
`broker_heartbeat_interval`, and a member silent for the session timeout is
dropped). The agents' longest stretch between awaits is parsing a batch:
256 of the largest orders the contract admits (500 lines) took 0.26 s of
CPU, against a heartbeat every 3 s at most and a session of 6 s at least.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.transports import ConsumerT, TransportT
from mode import Service
from mode.utils.futures import maybe_async


class ConsumerOnTheLoop(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer service, run on the loop that created it instead of a thread."""

    wait_for_shutdown = False
    """A thread signals its shutdown from the other side; here `stop` is the whole shutdown."""

    def __init__(self, consumer: faust_aiokafka.Consumer, **kwargs: Any) -> None:
        loop = kwargs.pop("loop")
        super().__init__(consumer, loop=loop, thread_loop=loop, **kwargs)

    async def maybe_start(self) -> bool:
        return await Service.maybe_start(self)

    async def start(self) -> None:
        await Service.start(self)

    async def stop(self) -> None:
        if self._started.is_set() and not self._stopped.is_set():
            await Service.stop(self)
            await self.on_thread_stop()

    async def crash(self, reason: BaseException) -> None:
        await Service.crash(self, reason)

    def _stopped_set(self) -> None:
        self._stopped.set()

    async def _stop_children(self) -> None:
        await self._default_stop_children()

    async def _stop_futures(self) -> None:
        await self._default_stop_futures()

    async def _stop_exit_stacks(self) -> None:
        await self._default_stop_exit_stacks()

    async def call_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # Faust passes coroutine functions and plain ones alike (aiokafka's `subscribe`).
        return await maybe_async(fun(*args, **kwargs))

    async def cast_thread(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        await maybe_async(fun(*args, **kwargs))

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        await self.consumer.on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        await self.consumer.on_partitions_assigned(assigned, generation_id)


class Consumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with `ConsumerOnTheLoop` in place of its thread."""

    def _new_consumer_thread(self) -> ConsumerOnTheLoop:
        return ConsumerOnTheLoop(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's aiokafka transport, creating `Consumer`s that run on the service's loop."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer


class App(faust.App):
    """A Faust app whose consumer runs on its own loop (`Transport`); the producer already does."""

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)
