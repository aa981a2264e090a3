"""Celery task: a thin caller of decisions.webhooks (one POST per run, retried with back-off)."""

from celery import shared_task

from decisions import webhooks


@shared_task(bind=True, name=webhooks.DELIVER_TASK, acks_late=True, ignore_result=True)
def deliver_webhook(self, delivery_id: int) -> str:
    result = webhooks.webhook_deliver(delivery_id=delivery_id, attempt=self.request.retries + 1)
    if result.retry_in is not None:
        # max_retries=None: STUDIOX_WEBHOOK_MAX_ATTEMPTS, read by the service, is the limit.
        raise self.retry(countdown=result.retry_in, max_retries=None)
    return result.status
