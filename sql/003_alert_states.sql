-- Alerts are recorded from the moment a rule's condition holds (pending),
-- become firing after the rule's duration, and resolved when it stops
-- holding. Operators can silence one (notifications suppressed until then).
alter table alerts drop constraint alerts_state_check;
alter table alerts add constraint alerts_state_check
  check (state in ('pending', 'firing', 'resolved'));
alter table alerts add column silenced_until timestamptz;
alter table alerts add column fired_at timestamptz;
