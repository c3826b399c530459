-- When the sender last handed a message to a provider: if its job dies before recording the
-- answer, the next run asks the provider by our own id (the message's row id, sent as the
-- provider's client reference) instead of sending it again.
alter table notifications add column sending_since timestamptz;
