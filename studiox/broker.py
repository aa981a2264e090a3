"""The embedded default's broker: kombu's filesystem transport, safe for several processes.

kombu creates a message file, then locks and writes it; a consumer listing the folder in
between takes an empty file, and the JSON error stops its worker for good (CI saw both
workers of a test gone this way). Consumers here never see a message before it is whole: it
is written under a name they ignore and renamed into place, which is atomic. A consumer
claims a message by renaming it too, so two never take the same one. A message that still
cannot be read is dropped with a warning: the database is the truth and the scheduler
re-enqueues the mission (missions.services._requeue_lost).
"""

import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
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
