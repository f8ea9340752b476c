"""staging-e2e and staging-cloud-run, derived by hand from the profile files and the spec.

Chapter texts and other tests quote "10 of 36 closed 1011, first at #16 (81 s)" and "1 of 21,
#15 (1350 s)". Here those numbers come from the rules, not from the simulator's output; the tests
then check that the simulation reproduces the derivation exactly.

Rules used (docs/spec/backend.md; routing as investigation/traffic.py reads a profile):

- Plan (traffic.connection_plan): client k's connection n starts at start_s + n * spacing_s; all
  connections sorted by (start, client index, n); run # = position in that order, from 0.
- Routing (traffic.instance_for): round_robin -> instance = run # % instances; sticky ->
  instance = client index % instances. Each instance is its own process with its own factory and
  its own per-user counts (spec 7, "The factory and its counts live in each instance").
- Every connection here authenticates (staging-e2e: E2E headers -> bypass, spec 5.2, user = the
  token payload's `sub` because the token holds no literal "staging-e2e-user" and its payload is
  in the standard base64 alphabet, see `test_e2e_payloads_decode_with_the_standard_alphabet`;
  staging-cloud-run: auth-service tokens, spec 5.3, user = sub). Startup is complete and both agent
  dependencies exist (profile defaults), so: manager created at the connection's start (step 7),
  message loop with the agent handler (steps 10, 12); the client leaves at start + hold_s.
- Step 14: the manager stays registered after the disconnect; the user's count is not decremented.
- Step 12: a start_agent message (sent at start + at_s) creates one more manager for the user,
  which is never released; at the cap it is refused without a close.
- Spec 4.2: count >= 5 -> emergency cleanup of that user's managers that are inactive, idle more
  than 300 s, or created more than 300 s ago with 0 connections; still >= 5 -> RuntimeError ->
  FactoryInitializationError (4.1) -> 1011 "Factory SSOT validation failed" (step 8), no manager.
  A connection refused at step 8 never reaches its message loop, so its start_agent is never read.
- Background cleanup (4.2): staging -> interval 300 s from the instance's first create_manager;
  it frees only managers idle more than 1800 s.

staging-e2e (round_robin over 3 instances; e2e-process-1/2/3 = user-001/002/003, client 0/1/2;
starts 0+14n, 1+16n, 2+18n; hold 4 s; only e2e-process-3 sends start_agent, at +2 s).
Plan: #0 p1@0, #1 p2@1, #2 p3@2, #3 p1@14, #4 p2@17, #5 p3@20, #6 p1@28, #7 p2@33, #8 p3@38,
#9 p1@42, #10 p2@49, #11 p1@56, #12 p3@56 (tie: client 0 first), #13 p2@65, #14 p1@70,
#15 p3@74, #16 p2@81, #17 p1@84, #18 p3@92, #19 p2@97, #20 p1@98, #21 p3@110, #22 p1@112,
#23 p2@113, #24 p1@126, #25 p3@128, #26 p2@129, #27 p1@140, #28 p2@145, #29 p3@146,
#30 p1@154, #31 p2@161, #32 p3@164, #33 p2@177, #34 p3@182, #35 p3@200.
The run lasts 0..204 s, so no manager is ever older than 204 s: emergency cleanup frees nothing
(needs > 300 s), and no background sweep runs (first one at 300 s or later).
Refused connections end at their start (closed 1011); served ones at start + 4.

    instance 0, user-001          instance 0, user-003                 instance 0, user-002
    #   t    end  before  result  #   event   t    before  result       #33 177-181: 0 -> 1
    0   0    4    0       1       12  conn    56   0       1
    3   14   18   1       2       12  agent   58   1       2
    6   28   32   2       3       15  conn    74   2       3
    9   42   46   3       4       15  agent   76   3       4
    24  126  130  4       5       18  conn    92   4       5
    27  140  140  5 (a)   1011    18  agent   94   5 (b)   refused
    30  154  154  5 (a)   1011    21  conn    110  5 (b)   1011, its agent unread
    (a) oldest created at 0 s, age 140 / 154 <= 300: frees none
    (b) oldest created at 56 s, age 38 / 54: frees none

    instance 1, user-002          instance 1, user-003                 instance 1, user-001
    #   t    end  before  result  #   event   t    before  result       #22 112-116: 0 -> 1
    1   1    5    0       1       25  conn    128  0       1
    4   17   21   1       2       25  agent   130  1       2
    7   33   37   2       3       34  conn    182  2       3
    10  49   53   3       4       34  agent   184  3       4
    13  65   69   4       5
    16  81   81   5 (c)   1011
    19  97   97   5 (c)   1011
    28  145  145  5 (c)   1011
    31  161  161  5 (c)   1011
    (c) oldest created at 1 s, ages 80 / 96 / 144 / 160: frees none

    instance 2, user-003                  instance 2, user-001          instance 2, user-002
    #   event   t    end  before  result  #11 56, #14 70, #17 84,        #23 113, #26 129:
    2   conn    2    6    0       1       #20 98: 0 -> 1 -> 2 -> 3 -> 4  0 -> 1 -> 2
    2   agent   4         1       2
    5   conn    20   24   2       3
    5   agent   22        3       4
    8   conn    38   42   4       5
    8   agent   40        5 (d)   refused
    29  conn    146  146  5 (d)   1011
    32  conn    164  164  5 (d)   1011
    35  conn    200  200  5 (d)   1011
    (d) oldest created at 2 s, ages 38 / 144 / 162 / 198: frees none

Result: 10 of 36 closed 1011: #16, #19, #21, #27, #28, #29, #30, #31, #32, #35; the first is
#16 at 81 s, e2e-process-2's 6th connection. start_agent: 12 sent (one per e2e-process-3
connection, at +2 s < hold 4 s), 8 read (#21, #29, #32, #35 were closed first), 2 refused (#8, #18).

staging-e2e under V4 (the route releases the connection's manager at its end, spec 8): user-001
and -002 never hold more than the current connection's manager (spacing 14/16 s > hold 4 s), so
only user-003's agent managers pile up. Instance 2, user-003 (before -> after each event):
#2 0->1, agent 1->2, end ->1; #5 1->2, agent 2->3, end ->2; #8 2->3, agent 3->4, end ->3;
#29 3->4, agent 4->5, end ->4; #32 4->5, agent at 166 s: 5, agent managers created at 4/22/40/148
(ages 162/144/126/18) and #32's own holds its connection: frees none -> refused, end ->4;
#35 4->5, agent at 202 s: ages 198/180/162/54 -> refused, end ->4. Instance 0: #12/#15/#18/#21
peak 5 at #21's agent (4 -> 5, not refused); instance 1: #25/#34 peak 3. So V4: no close,
12 start_agent read, 2 refused (#32, #35) -- chapter 05's "2 of 12".

staging-cloud-run (sticky over 3 instances; clients 0 A-long-tab, 1 B-flaky, 2 B-desk,
3 C-short-visits, 4 D-long-tab, 5 E-mobile, 6 E-later, 7 F-quick-checks; instance = index % 3:
0 -> A, C, E-later; 1 -> B-flaky, D, F; 2 -> B-desk, E-mobile). B-flaky/B-desk share user B and
E-mobile/E-later share user E, but each pair sits on two instances.
Plan: #0 A@30, #1 C@100, #2..#6 B-flaky@200/250/300/350/400, #7 B-desk@600, #8 D@900,
#9 C@1000, #10..#15 E-mobile@1200/1230/1260/1290/1320/1350, #16 C@1900, #17 E-later@2000,
#18 F@2500, #19 C@2800, #20 F@2900. All end by 3300 s < duration 3600 s.

    instance 2, user E (E-mobile)         instance 0, user C
    #   t     end   before  result        #   event  t     end   before  result
    10  1200  1225  0       1             1   conn   100   400   0       1
    11  1230  1255  1       2             1   agent  120         1       2
    12  1260  1285  2       3             9   conn   1000  1300  2       3
    13  1290  1315  3       4             9   agent  1020        3       4
    14  1320  1345  4       5             16  conn   1900  2200  4       5
    15  1350  1350  5 (e)   1011          16  agent  1920        5 (f)   4 freed -> 1 -> 2
                                          19  conn   2800  3100  2       3
                                          19  agent  2820        3       4
    (e) managers created 1200..1320 (ages 150..30 <= 300), idle since their ends 1225..1345
        (125..5 s), all active: frees none. Background sweeps (900, 1200, 1500 s) free nothing.
    (f) stale: #1's (created 100, age 1820, 0 connections), the agent's of 120 (age 1800),
        #9's (age 920, 0 connections), the agent's of 1020 (age 900); not #16's (holds its
        connection): frees 4, count 5 -> 4 -> 3 -> 2 -> 1, then the new manager -> 2.
        No background sweep freed C's before (idle > 1800 s first reached at 120 + 1800 = 1920,
        and inst 0 sweeps at 1830 and 2130).

    Others (no refusal possible, count stays <= 5): instance 0 A: #0 30 -> 1, agents at 55 and
    460 -> 3; E-later: #17 2000 -> 1, agent 2015 -> 2. Instance 1 B: #2..#6 -> 1..5 (at the cap,
    but B asks instance 1 for no sixth manager); D: #8 900 -> 1, agent 940 -> 2; F: #18 2500 -> 1,
    agent 2520 -> 2, #20 2900 -> 3, agent 2920 -> 4. Instance 2 B: #7 600 -> 1, agents at 620 and
    1210 -> 3.

Result: 1 of 21 closed 1011: #15 at 1350 s, E-mobile's 6th connection; start_agent: 12 read
(A 2, B-desk 2, C 4, D 1, E-later 1, F 2), 0 refused.
"""

from __future__ import annotations

import base64

import pytest

from investigation.clock import EPOCH_MS
from investigation.profiles import load_profile
from investigation.simulate import simulate
from investigation.trace import ConnectionResult, RunResult
from investigation.traffic import auth_environment, connection_plan, instance_for, mint_token

FACTORY_REASON = "Factory SSOT validation failed"

# staging-e2e: (run #, client, start s, instance) of every connection, from the plan above.
E2E_PLAN = [
    (0, "e2e-process-1", 0), (1, "e2e-process-2", 1), (2, "e2e-process-3", 2),
    (3, "e2e-process-1", 14), (4, "e2e-process-2", 17), (5, "e2e-process-3", 20),
    (6, "e2e-process-1", 28), (7, "e2e-process-2", 33), (8, "e2e-process-3", 38),
    (9, "e2e-process-1", 42), (10, "e2e-process-2", 49), (11, "e2e-process-1", 56),
    (12, "e2e-process-3", 56), (13, "e2e-process-2", 65), (14, "e2e-process-1", 70),
    (15, "e2e-process-3", 74), (16, "e2e-process-2", 81), (17, "e2e-process-1", 84),
    (18, "e2e-process-3", 92), (19, "e2e-process-2", 97), (20, "e2e-process-1", 98),
    (21, "e2e-process-3", 110), (22, "e2e-process-1", 112), (23, "e2e-process-2", 113),
    (24, "e2e-process-1", 126), (25, "e2e-process-3", 128), (26, "e2e-process-2", 129),
    (27, "e2e-process-1", 140), (28, "e2e-process-2", 145), (29, "e2e-process-3", 146),
    (30, "e2e-process-1", 154), (31, "e2e-process-2", 161), (32, "e2e-process-3", 164),
    (33, "e2e-process-2", 177), (34, "e2e-process-3", 182), (35, "e2e-process-3", 200),
]
E2E_FAILURES = [(16, 1011), (19, 1011), (21, 1011), (27, 1011), (28, 1011),
                (29, 1011), (30, 1011), (31, 1011), (32, 1011), (35, 1011)]
E2E_AGENT_READ = 8
E2E_AGENT_REFUSED = {8: 1, 18: 1}
E2E_V4_AGENT_REFUSED = {32: 1, 35: 1}
# (instance, user suffix) -> peak manager count, from the tables.
E2E_PEAKS = {
    (0, "001"): 5, (0, "003"): 5, (0, "002"): 1,
    (1, "002"): 5, (1, "001"): 1, (1, "003"): 4,
    (2, "003"): 5, (2, "001"): 4, (2, "002"): 2,
}

CLOUD_RUN_CLIENT_INSTANCE = {
    "user-a-long-tab": 0, "user-b-flaky-network": 1, "user-b-desk": 2, "user-c-short-visits": 0,
    "user-d-long-tab": 1, "user-e-mobile": 2, "user-e-later": 0, "user-f-quick-checks": 1,
}
CLOUD_RUN_PLAN = [
    (0, "user-a-long-tab", 30), (1, "user-c-short-visits", 100),
    (2, "user-b-flaky-network", 200), (3, "user-b-flaky-network", 250),
    (4, "user-b-flaky-network", 300), (5, "user-b-flaky-network", 350),
    (6, "user-b-flaky-network", 400), (7, "user-b-desk", 600), (8, "user-d-long-tab", 900),
    (9, "user-c-short-visits", 1000), (10, "user-e-mobile", 1200), (11, "user-e-mobile", 1230),
    (12, "user-e-mobile", 1260), (13, "user-e-mobile", 1290), (14, "user-e-mobile", 1320),
    (15, "user-e-mobile", 1350), (16, "user-c-short-visits", 1900), (17, "user-e-later", 2000),
    (18, "user-f-quick-checks", 2500), (19, "user-c-short-visits", 2800),
    (20, "user-f-quick-checks", 2900),
]
USER_A, USER_B, USER_C = "104729384756102938475", "117364829105738291046", "109283746501928374650"
USER_D, USER_E, USER_F = "112837465019283746501", "106574839201746382910", "118293047561829304756"
CLOUD_RUN_PEAKS = {
    (0, USER_A): 3, (0, USER_C): 5, (0, USER_E): 2,
    (1, USER_B): 5, (1, USER_D): 2, (1, USER_F): 4,
    (2, USER_B): 3, (2, USER_E): 5,
}
# Table (f): user C on instance 0, (time s, count after the change).
USER_C_COUNTS = [(100, 1), (120, 2), (1000, 3), (1020, 4), (1900, 5),
                 (1920, 4), (1920, 3), (1920, 2), (1920, 1), (1920, 2), (2800, 3), (2820, 4)]


@pytest.fixture(scope="module")
def e2e_run() -> RunResult:
    return simulate(load_profile("staging-e2e"))


@pytest.fixture(scope="module")
def cloud_run() -> RunResult:
    return simulate(load_profile("staging-cloud-run"))


def failures(run: RunResult) -> list[tuple[int, int | None]]:
    return [(c.index, c.close_code) for c in run.failures]


def agent_refusals(run: RunResult) -> dict[int, int]:
    return {c.index: c.start_agent_refusals() for c in run.connections if c.start_agent_refusals()}


def agent_messages_read(run: RunResult) -> int:
    return sum(sum(c.tally("route.start_agent").values()) for c in run.connections)


def peak_counts(run: RunResult) -> dict[tuple[int, str], int]:
    peaks: dict[tuple[int, str], int] = {}
    for change in run.manager_counts:
        key = (change.instance, change.user_id)
        peaks[key] = max(peaks.get(key, 0), change.count)
    return peaks


def plan_rows(name: str) -> list[tuple[int, str, float, int]]:
    profile = load_profile(name)
    return [(p.index, p.client.name, p.at_s, instance_for(p, profile.routing, profile.instances))
            for p in connection_plan(profile)]


def test_staging_e2e_plan_and_round_robin_instances() -> None:
    assert plan_rows("staging-e2e") == [(index, client, at, index % 3) for index, client, at in E2E_PLAN]


def test_staging_cloud_run_plan_and_sticky_instances() -> None:
    expected = [(index, client, at, CLOUD_RUN_CLIENT_INSTANCE[client]) for index, client, at in CLOUD_RUN_PLAN]
    assert plan_rows("staging-cloud-run") == expected


def test_e2e_payloads_decode_with_the_standard_alphabet() -> None:
    """Premise of the tables: spec 5.2 decodes the payload with the standard alphabet (dropping
    "-" and "_"), so `sub` is read only if the base64url payload holds neither; otherwise the user
    would be time-based and no user would reach the cap."""
    profile = load_profile("staging-e2e")
    env = auth_environment(profile)
    for planned in connection_plan(profile):
        token = mint_token(planned.client, planned.number, env, EPOCH_MS / 1000 + planned.at_s)
        assert token is not None and "staging-e2e-user" not in token.lower()
        payload = token.split(".")[1]
        assert not {"-", "_"} & set(payload)
        assert planned.client.user_id.encode() in base64.b64decode(payload + "=" * (-len(payload) % 4))


def test_staging_e2e_closes_exactly_the_derived_connections(e2e_run: RunResult) -> None:
    assert failures(e2e_run) == E2E_FAILURES
    assert (len(e2e_run.failures), len(e2e_run.connections)) == (10, 36)
    assert {c.close_reason for c in e2e_run.failures} == {FACTORY_REASON}
    first = e2e_run.first_failure()
    assert first is not None
    assert (first.index, first.client, first.at_s) == (16, "e2e-process-2", 81.0)
    assert [c.index for c in e2e_run.connections if c.client == "e2e-process-2"].index(16) == 5


def test_staging_e2e_users_are_the_token_subjects(e2e_run: RunResult) -> None:
    suffix = {"e2e-process-1": "001", "e2e-process-2": "002", "e2e-process-3": "003"}
    assert all(c.user_id == f"staging-e2e-user-{suffix[c.client]}" for c in e2e_run.connections)


def test_staging_e2e_start_agent_refusals_original(e2e_run: RunResult) -> None:
    assert agent_refusals(e2e_run) == E2E_AGENT_REFUSED
    assert agent_messages_read(e2e_run) == E2E_AGENT_READ


def test_staging_e2e_peak_manager_counts_and_nothing_freed(e2e_run: RunResult) -> None:
    assert peak_counts(e2e_run) == {(i, f"staging-e2e-user-{u}"): n for (i, u), n in E2E_PEAKS.items()}
    history: dict[tuple[int, str], list[int]] = {}
    for change in e2e_run.manager_counts:
        history.setdefault((change.instance, change.user_id), []).append(change.count)
    assert all(counts == list(range(1, len(counts) + 1)) for counts in history.values())


def test_staging_e2e_under_v4() -> None:
    run = simulate(load_profile("staging-e2e"), "V4")
    assert failures(run) == []
    assert agent_refusals(run) == E2E_V4_AGENT_REFUSED
    assert agent_messages_read(run) == 12


def test_staging_cloud_run_closes_exactly_the_derived_connection(cloud_run: RunResult) -> None:
    assert failures(cloud_run) == [(15, 1011)]
    assert (len(cloud_run.failures), len(cloud_run.connections)) == (1, 21)
    only: ConnectionResult = cloud_run.failures[0]
    assert (only.client, only.at_s, only.user_id, only.close_reason) == ("user-e-mobile", 1350.0, USER_E, FACTORY_REASON)


def test_staging_cloud_run_start_agents_all_served(cloud_run: RunResult) -> None:
    assert agent_refusals(cloud_run) == {}
    assert agent_messages_read(cloud_run) == 12


def test_staging_cloud_run_manager_counts(cloud_run: RunResult) -> None:
    assert peak_counts(cloud_run) == CLOUD_RUN_PEAKS
    user_c = [(c.at_s, c.count) for c in cloud_run.manager_counts if (c.instance, c.user_id) == (0, USER_C)]
    assert user_c == USER_C_COUNTS
    user_e = [(c.at_s, c.count) for c in cloud_run.manager_counts
              if (c.instance, c.user_id) == (2, USER_E) and c.at_s <= 1350]
    assert user_e == [(1200, 1), (1230, 2), (1260, 3), (1290, 4), (1320, 5)]
