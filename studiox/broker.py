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
one client per connection pool instead (a client over a shared pool is thread-safe).
"""

import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps, loads

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


class RedisChannel(kombu_redis.Channel):
    _kept_client: tuple[object, object] = (None, None)  # (pool, client over that pool)

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
