"""The brokers' kombu transports, each mending one behaviour of kombu's own.

The embedded default's broker is kombu's filesystem transport, made safe for several
processes. kombu creates a message file, then locks and writes it; a consumer listing the
folder in between takes an empty file, and the JSON error stops its worker for good.
Consumers here never see a message before it is whole:
it is written under a name they ignore and renamed into place, which is atomic. A consumer
claims a message by renaming it too, so two never take the same one. A message that still
cannot be read is dropped with a warning: the database is the truth and the scheduler
re-enqueues the mission (missions.services._requeue_lost).

On Redis, kombu's channel builds a new redis-py client for every delivery's bookkeeping and
every acknowledgement, and redis-py 8 copies its table of response callbacks into each new
client: a sixth of a Celery worker's main process's CPU went there. `RedisTransport` keeps
one client per connection pool instead (a client over a shared pool is thread-safe). Its
delivery bookkeeping (`RedisQoS`) keeps kombu's keys and layout, so kombu restores unacknowledged
messages as before, but writes each delivery and each acknowledgement with one script over a
direct connection (studiox.redis_direct) instead of a MULTI/EXEC pipeline through a client:
those pipelines were two fifths of a worker's main process's CPU.
"""

import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic, time

from kombu.exceptions import ChannelError
from kombu.transport import filesystem, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps, loads

from studiox.redis_direct import DirectConnection

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + PARTIAL_SUFFIX, "wb") as partial:
                partial.write(dumps(payload).encode())
            os.replace(path + PARTIAL_SUFFIX, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue: str) -> dict:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                with open(claimed, "rb") as message:
                    return loads(message.read())
            except (OSError, ValueError) as exc:
                logger.warning("Dropped an unreadable broker message %s: %s", name, exc)
            finally:
                Path(claimed).unlink(missing_ok=True)
        raise Empty()


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict:
        # Folders need no host: kombu's default of "localhost" made every process warn that
        # "No hostname was supplied".
        return {"port": self.default_port}


# What kombu's QoS writes in one transaction each, as one script each (scripts run atomically).
REMEMBER_DELIVERY = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
"""
FORGET_DELIVERY = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
"""


class RedisQoS(kombu_redis.QoS):
    def append(self, message, delivery_tag) -> None:
        if self.channel.global_keyprefix:  # kombu prefixes only one key of a script's
            return super().append(message, delivery_tag)
        delivery = message.delivery_info
        unacked = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        self._run(REMEMBER_DELIVERY, delivery_tag, time(), unacked)
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag) -> None:
        if self.channel.global_keyprefix:
            return super().ack(delivery_tag)
        self._run(FORGET_DELIVERY, delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def _run(self, script: str, *args) -> None:
        # EVAL with the script's text: Redis keeps it compiled, and a restarted Redis that
        # forgot it cannot answer NOSCRIPT.
        keys = (self.unacked_index_key, self.unacked_key)
        self.channel.direct().execute("EVAL", script, len(keys), *keys, *args)


class RedisChannel(kombu_redis.Channel):
    QoS = RedisQoS
    _kept_client: tuple[object, object] = (None, None)  # (pool, client over that pool)
    _kept_direct: tuple[object, DirectConnection | None] = (None, None)  # the same, direct

    def direct(self) -> DirectConnection:
        """The connection for the bookkeeping's commands (studiox.redis_direct)."""
        pool, direct = self._kept_direct
        if pool is not self.pool:  # first use, or kombu replaced the pool after an error
            direct = DirectConnection(self.pool)
            self._kept_direct = (self.pool, direct)
        return direct

    def _create_client(self, asynchronous: bool = False):
        if asynchronous:  # the consumer's blocking reads: kombu keeps that one itself
            return super()._create_client(asynchronous=True)
        pool, client = self._kept_client
        if pool is not self.pool:  # first use, or kombu replaced the pool after an error
            client = super()._create_client()
            self._kept_client = (self.pool, client)
        return client


class RedisTransport(kombu_redis.Transport):
    Channel = RedisChannel
