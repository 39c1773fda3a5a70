use super::*;

const SEC: Duration = Duration::from_secs(1);

struct Ladder {
    state: AppState,
    policy: Policy,
    now: Instant,
}

impl Ladder {
    fn new(then: Then) -> Self {
        let start = Instant::now();
        let policy = Policy {
            interval: SEC,
            failures_before_action: 2,
            local_attempts: 2,
            window: Duration::from_secs(600),
            backoff: SEC,
            then,
            can_restart: true,
            start_grace: Duration::ZERO,
            max_flaps: 0,
            flap_window: Duration::from_secs(3600),
            timeouts_before_failure: 2,
            no_escalation_before: start + 2 * SEC,
        };
        Self {
            state: AppState::default(),
            policy,
            now: start + 10 * SEC,
        }
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        self.now += SEC;
        next(&mut self.state, event, &self.policy, self.now)
    }

    fn fail(&mut self) -> Vec<Action> {
        self.on(Event::Checked(CheckOutcome::Failed("down".into())))
    }

    fn kinds(actions: &[Action]) -> Vec<Kind> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Journal(kind, _) => Some(*kind),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn failures_below_threshold_do_nothing() {
    let mut l = Ladder::new(Then::VmReset);
    assert!(l.fail().is_empty());
    assert_eq!(l.state.phase, Phase::Healthy);
    assert_eq!(l.state.consecutive_failures, 1);
}

#[test]
fn threshold_starts_kit_recovery_after_journaling() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    let actions = l.fail();
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::AppFailed, Kind::RecoveryAttempt]
    );
    assert_eq!(actions.last(), Some(&Action::KitRecover(1)));
    assert_eq!(l.state.phase, Phase::Recovering);
}

#[test]
fn a_passing_check_resets_the_count() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    assert!(l.on(Event::Checked(CheckOutcome::Healthy)).is_empty());
    assert!(l.fail().is_empty(), "the row starts again");
}

#[test]
fn kit_fault_is_journaled_and_never_counts() {
    let mut l = Ladder::new(Then::VmReset);
    let fault = Event::Checked(CheckOutcome::KitFault("trap".into()));
    assert_eq!(Ladder::kinds(&l.on(fault.clone())), vec![Kind::KitFault]);
    for _ in 0..10 {
        assert!(l.on(fault.clone()).is_empty(), "a streak is journaled once");
    }
    l.on(Event::Checked(CheckOutcome::Healthy));
    assert_eq!(
        Ladder::kinds(&l.on(fault)),
        vec![Kind::KitFault],
        "a new streak is journaled again"
    );
    assert_eq!(l.state.consecutive_failures, 0);
    assert_eq!(l.state.phase, Phase::Healthy);
}

#[test]
fn degraded_is_journaled_once_and_breaks_the_row() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    let degraded = Event::Checked(CheckOutcome::Degraded("slow".into()));
    assert_eq!(
        Ladder::kinds(&l.on(degraded.clone())),
        vec![Kind::AppDegraded]
    );
    assert!(l.on(degraded).is_empty());
    assert_eq!(l.state.consecutive_failures, 0);
}

#[test]
fn kit_asks_restart_then_backoff_check() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    assert_eq!(
        l.on(Event::KitRecovered(KitRecovery::RestartApp)),
        vec![Action::Restart(1)]
    );
    assert_eq!(
        l.on(Event::Restarted(Ok(()))),
        vec![Action::CheckAfter(SEC)]
    );
}

#[test]
fn restart_without_start_command_is_a_failed_step() {
    let mut l = Ladder::new(Then::VmReset);
    l.policy.can_restart = false;
    l.fail();
    l.fail();
    let actions = l.on(Event::KitRecovered(KitRecovery::RestartApp));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::RecoveryFailed]);
}

#[test]
fn kit_fault_in_recover_falls_back_to_restart() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    let actions = l.on(Event::KitRecovered(KitRecovery::KitFault("trap".into())));
    assert_eq!(
        actions,
        vec![
            Action::Journal(Kind::KitFault, json!({"call": "recover", "fault": "trap"})),
            Action::Restart(1)
        ]
    );
}

#[test]
fn recovery_then_healthy_check_journals_recovered() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Done));
    let actions = l.on(Event::Checked(CheckOutcome::Healthy));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::AppRecovered]);
    assert_eq!(l.state.phase, Phase::Healthy);
}

#[test]
fn backoff_doubles_per_attempt_and_is_capped_by_window() {
    let mut l = Ladder::new(Then::VmReset);
    l.policy.local_attempts = 20;
    l.fail();
    l.fail();
    assert_eq!(
        l.on(Event::KitRecovered(KitRecovery::Done)),
        vec![Action::CheckAfter(SEC)]
    );
    l.fail();
    assert_eq!(
        l.on(Event::KitRecovered(KitRecovery::Done)),
        vec![Action::CheckAfter(2 * SEC)]
    );
    l.fail();
    assert_eq!(
        l.on(Event::KitRecovered(KitRecovery::Done)),
        vec![Action::CheckAfter(4 * SEC)]
    );
    l.policy.window = 3 * SEC;
    l.state.attempts = vec![l.now; 10];
    assert_eq!(
        l.on(Event::KitRecovered(KitRecovery::Done)),
        vec![Action::CheckAfter(3 * SEC)]
    );
}

fn spend_attempts(l: &mut Ladder) -> Vec<Action> {
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Failed("no".into())));
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Failed("no".into())));
    l.fail()
}

#[test]
fn spent_attempts_request_a_reset() {
    let mut l = Ladder::new(Then::VmReset);
    let actions = spend_attempts(&mut l);
    assert_eq!(Ladder::kinds(&actions), vec![Kind::Escalation]);
    assert!(matches!(actions.last(), Some(Action::RequestReset(_))));
    assert_eq!(l.state.phase, Phase::Escalating);
}

#[test]
fn attempts_outside_the_window_are_forgotten() {
    let mut l = Ladder::new(Then::VmReset);
    l.policy.window = Duration::from_secs(5);
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Failed("no".into())));
    l.now += Duration::from_secs(10);
    let actions = l.fail();
    assert_eq!(
        actions.last(),
        Some(&Action::KitRecover(1)),
        "the old attempt left the window"
    );
}

#[test]
fn never_escalate_just_after_start() {
    let mut l = Ladder::new(Then::VmReset);
    l.now = l.policy.no_escalation_before - 10 * SEC;
    l.policy.local_attempts = 1;
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Failed("no".into())));
    let actions = l.fail();
    assert_eq!(Ladder::kinds(&actions), vec![Kind::EscalationDeferred]);
    assert!(!actions.iter().any(|a| matches!(a, Action::RequestReset(_))));
    assert_eq!(l.state.phase, Phase::Recovering);
    l.now = l.policy.no_escalation_before;
    let actions = l.fail();
    assert!(
        matches!(actions.last(), Some(Action::RequestReset(_))),
        "after the guard: {actions:?}"
    );
}

#[test]
fn kit_asking_escalation_is_confirmed_by_a_failed_check_first() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    let escalate = || Event::KitRecovered(KitRecovery::Escalate("disk gone".into()));
    let actions = l.on(escalate());
    assert_eq!(Ladder::kinds(&actions), vec![Kind::EscalationDeferred]);
    assert_eq!(actions.last(), Some(&Action::CheckAfter(SEC)));
    assert_eq!(l.state.phase, Phase::Recovering);
    // Still down after the kit's step: the next attempt may escalate.
    assert_eq!(l.fail().last(), Some(&Action::KitRecover(2)));
    let actions = l.on(escalate());
    assert!(matches!(actions.last(), Some(Action::RequestReset(r)) if r.contains("disk gone")));
}

#[test]
fn a_kit_that_escalates_on_a_passing_app_never_resets() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::Escalate(
        "hopeless".into(),
    )));
    l.on(Event::Checked(CheckOutcome::Healthy));
    l.fail();
    l.fail();
    let actions = l.on(Event::KitRecovered(KitRecovery::Escalate(
        "hopeless".into(),
    )));
    assert!(
        !actions.iter().any(|a| matches!(a, Action::RequestReset(_))),
        "the evidence went with the passing check: {actions:?}"
    );
}

#[test]
fn unknown_is_journaled_once_and_never_acted_on() {
    let mut l = Ladder::new(Then::VmReset);
    let unknown = || Event::Checked(CheckOutcome::Unknown("AUTH: WRONGPASS".into()));
    l.fail();
    let actions = l.on(unknown());
    assert_eq!(Ladder::kinds(&actions), vec![Kind::AppUnknown]);
    assert_eq!(
        l.state.consecutive_failures, 0,
        "the failure streak is broken"
    );
    for _ in 0..10 {
        assert!(
            l.on(unknown()).is_empty(),
            "once per streak, never an action"
        );
    }
    assert_eq!(l.state.phase, Phase::Healthy);
    assert_eq!(
        super::super::status::state_of(&l.state, l.now),
        crate::status::State::Unknown
    );
    l.on(Event::Checked(CheckOutcome::Healthy));
    assert_eq!(
        Ladder::kinds(&l.on(unknown())),
        vec![Kind::AppUnknown],
        "a new streak"
    );
}

#[test]
fn a_check_that_keeps_timing_out_counts_as_failed() {
    let mut l = Ladder::new(Then::VmReset);
    let timeout = || Event::Checked(CheckOutcome::TimedOut("deadline of 1s".into()));
    assert_eq!(Ladder::kinds(&l.on(timeout())), vec![Kind::KitFault]);
    assert_eq!(
        l.state.consecutive_failures, 0,
        "one timeout is a kit fault"
    );
    assert!(
        l.on(timeout()).is_empty(),
        "the second counts as one failure"
    );
    assert_eq!(l.state.consecutive_failures, 1);
    let actions = l.on(timeout());
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::AppFailed, Kind::RecoveryAttempt]
    );
    assert!(
        matches!(&actions[0], Action::Journal(_, d) if d["reason"].as_str().unwrap().starts_with("check timed out 3 times in a row"))
    );
    // Any other answer ends the streak.
    l.on(Event::Checked(CheckOutcome::KitFault("trap".into())));
    l.on(timeout());
    assert_eq!(l.state.timeouts, 1);
}

#[test]
fn other_kit_faults_never_count_however_many() {
    let mut l = Ladder::new(Then::VmReset);
    for _ in 0..10 {
        l.on(Event::Checked(CheckOutcome::KitFault("denied".into())));
    }
    assert_eq!(l.state.consecutive_failures, 0);
    assert_eq!(l.state.phase, Phase::Healthy);
}

#[test]
fn timeouts_in_the_start_grace_do_not_count() {
    let mut l = Ladder::new(Then::VmReset);
    l.state.grace_until = Some(l.now + 100 * SEC);
    for _ in 0..5 {
        l.on(Event::Checked(CheckOutcome::TimedOut("slow".into())));
    }
    assert_eq!(l.state.consecutive_failures, 0);
}

#[test]
fn refused_reset_holds_in_manual_and_nothing_more_happens() {
    let mut l = Ladder::new(Then::VmReset);
    spend_attempts(&mut l);
    let actions = l.on(Event::ResetDone(ResetOutcome::Refused(
        "budget spent".into(),
    )));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::Manual]);
    assert!(matches!(l.state.phase, Phase::Manual(_)));
    for _ in 0..5 {
        assert!(l.fail().is_empty(), "manual means no action");
    }
}

#[test]
fn manual_app_passing_a_check_is_recovered() {
    let mut l = Ladder::new(Then::None);
    spend_attempts(&mut l);
    assert!(matches!(l.state.phase, Phase::Manual(_)));
    let actions = l.on(Event::Checked(CheckOutcome::Healthy));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::AppRecovered]);
}

#[test]
fn done_reset_starts_from_a_clean_slate() {
    let mut l = Ladder::new(Then::VmReset);
    spend_attempts(&mut l);
    assert!(l.on(Event::ResetDone(ResetOutcome::Reset)).is_empty());
    assert_eq!(l.state, AppState::default());
    l.fail();
    assert_eq!(l.fail().last(), Some(&Action::KitRecover(1)));
}

#[test]
fn then_alert_alerts_and_holds() {
    let mut l = Ladder::new(Then::Alert);
    let actions = spend_attempts(&mut l);
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::Escalation, Kind::Alert, Kind::Manual]
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::RequestReset(_))));
}

#[test]
fn then_none_just_holds() {
    let mut l = Ladder::new(Then::None);
    let actions = spend_attempts(&mut l);
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::Escalation, Kind::Manual]
    );
}

#[test]
fn zero_local_attempts_alert_and_hold_at_once_and_never_reset() {
    // A VM reset needs evidence that local recovery ran: with no local
    // attempt allowed there never is any, so it is refused the same way.
    for then in [Then::Alert, Then::VmReset] {
        let mut l = Ladder::new(then);
        l.policy.local_attempts = 0;
        l.fail();
        let actions = l.fail();
        assert_eq!(
            Ladder::kinds(&actions),
            vec![Kind::AppFailed, Kind::Escalation, Kind::Alert, Kind::Manual]
        );
        assert!(!actions.iter().any(|a| matches!(a, Action::RequestReset(_))));
        let refused =
            matches!(&l.state.phase, Phase::Manual(why) if why.contains("vm-reset refused"));
        assert_eq!(
            refused,
            l.policy.then == Then::VmReset,
            "{:?}",
            l.state.phase
        );
    }
}

#[test]
fn failed_restart_is_journaled_and_rechecked() {
    let mut l = Ladder::new(Then::VmReset);
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::RestartApp));
    let actions = l.on(Event::Restarted(Err("exit 1".into())));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::RecoveryFailed]);
    assert_eq!(actions.last(), Some(&Action::CheckAfter(SEC)));
}

#[test]
fn failed_checks_within_start_grace_do_not_count() {
    let mut l = Ladder::new(Then::None);
    l.policy.start_grace = 5 * SEC;
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::RestartApp));
    l.on(Event::Restarted(Ok(())));
    // 4 more seconds pass inside the grace: nothing happens.
    for _ in 0..4 {
        assert!(l.fail().is_empty(), "inside the grace");
    }
    assert_eq!(l.state.attempts.len(), 1);
    // The grace is over: the next failure uses the second attempt.
    assert_eq!(
        Ladder::kinds(&l.fail()),
        vec![Kind::RecoveryAttempt],
        "after the grace"
    );
}

#[test]
fn a_passing_check_ends_the_start_grace() {
    let mut l = Ladder::new(Then::None);
    l.policy.start_grace = 60 * SEC;
    l.fail();
    l.fail();
    l.on(Event::KitRecovered(KitRecovery::RestartApp));
    l.on(Event::Restarted(Ok(())));
    l.on(Event::Checked(CheckOutcome::Healthy));
    assert_eq!(l.state.grace_until, None);
    assert!(l.fail().is_empty(), "below the threshold again");
    assert_eq!(
        Ladder::kinds(&l.fail()),
        vec![Kind::AppFailed, Kind::RecoveryAttempt]
    );
}

#[test]
fn a_process_exit_acts_at_once_even_in_the_grace() {
    let mut l = Ladder::new(Then::None);
    l.policy.start_grace = 60 * SEC;
    l.state.grace_until = Some(l.now + 60 * SEC);
    let actions = l.on(Event::ProcessExited("pid 42 exited".into()));
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::AppFailed, Kind::RecoveryAttempt]
    );
    assert!(actions.contains(&Action::KitRecover(1)));
}

#[test]
fn an_app_that_keeps_failing_and_recovering_is_held_as_flapping() {
    let mut l = Ladder::new(Then::None);
    l.policy.max_flaps = 2;
    l.policy.local_attempts = 10;
    for _ in 0..2 {
        l.fail();
        let actions = l.fail();
        assert!(actions.contains(&Action::KitRecover(l.state.attempts.len() as u32)));
        l.on(Event::Checked(CheckOutcome::Healthy));
    }
    l.fail();
    let actions = l.fail();
    assert_eq!(
        Ladder::kinds(&actions),
        vec![Kind::AppFailed, Kind::Alert, Kind::Manual]
    );
    assert!(
        matches!(&l.state.phase, Phase::Manual(why) if why.starts_with("flapping: down 3 times"))
    );
}

#[test]
fn flaps_age_out_of_their_window() {
    let mut l = Ladder::new(Then::None);
    l.policy.max_flaps = 1;
    l.policy.local_attempts = 10;
    l.policy.flap_window = 10 * SEC;
    l.fail();
    l.fail();
    l.on(Event::Checked(CheckOutcome::Healthy));
    l.now += 20 * SEC;
    l.fail();
    assert_eq!(
        Ladder::kinds(&l.fail()),
        vec![Kind::AppFailed, Kind::RecoveryAttempt]
    );
}

#[test]
fn an_admin_recovery_releases_a_held_app_without_using_an_attempt() {
    let mut l = Ladder::new(Then::None);
    l.state.phase = Phase::Manual("held".into());
    let actions = l.on(Event::AdminRecover("uid 0".into()));
    assert_eq!(Ladder::kinds(&actions), vec![Kind::RecoveryAttempt]);
    assert!(actions.contains(&Action::KitRecover(0)));
    assert!(l.state.attempts.is_empty());
    assert_eq!(l.state.phase, Phase::Recovering);
    assert_eq!(
        Ladder::kinds(&l.on(Event::Checked(CheckOutcome::Healthy))),
        vec![Kind::AppRecovered]
    );
    l.state.phase = Phase::Escalating;
    assert!(l.on(Event::AdminRecover("uid 0".into())).is_empty());
}
