"""Reply jobs: answer a contact's pending messages and send the reply through the gateway."""

from __future__ import annotations

from backend.errors import NotFound
from backend.runtime import Runtime
from backend.services.inbound import REPLY_JOB
from backend.services.replies import ChannelBusy, give_up, reply_to_contact
from backend.workers.jobs import Job, Lease, RetryLater


class ReplyJob:
    """Kind `reply`, payload `{"contact_id", "channel_id", "request_id"?}`, serial per contact."""

    async def run(self, rt: Runtime, job: Job, lease: Lease) -> None:
        try:
            await reply_to_contact(rt, job.payload["contact_id"], heartbeat=lease.heartbeat)
        except ChannelBusy as exc:
            raise RetryLater("channel_busy", delay=exc.delay) from exc
        except NotFound:
            return  # the channel or assistant was deleted: nobody is left to answer

    async def failed(self, rt: Runtime, job: Job, error: str) -> None:
        await give_up(rt, job.payload["contact_id"], error)


HANDLERS = {REPLY_JOB: ReplyJob()}
