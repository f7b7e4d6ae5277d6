"""The monitor network's persistence rule: a step is anomalous only when its last `persist` steps all are, and a
sequence scored in pieces that overlap by `reach()` scores as the whole (the stream scores its windows so)."""

from __future__ import annotations

import torch

from shopfloor.tasks.monitor.network import MonitorNet, persisted


def test_a_lone_step_above_is_not_flagged_a_run_of_persist_steps_is():
    raw = torch.tensor([[0.0, 2.0, 0.0, 2.0, 2.0, 2.0, 0.0, 2.0, 2.0]])
    assert persisted(raw, 3).tolist() == [[0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]]
    assert persisted(raw, 1).tolist() == raw.tolist()
    assert persisted(torch.tensor([[3.0, 2.0, 1.0]]), 5).tolist() == [[3.0, 2.0, 1.0]]  # the first step repeated before


def test_pieces_that_overlap_by_the_reach_score_as_the_whole():
    torch.manual_seed(0)
    net = MonitorNet(3, window=6, channels=4, latent=2, kernel=3, persist=4).eval()
    readings = torch.randn(1, 3, 120).cumsum(-1)
    with torch.no_grad():
        whole = net(readings)[1][0]
        start = 70
        piece = net(readings[..., start - net.reach():])[1][0, net.reach():]
    torch.testing.assert_close(piece, whole[start:], rtol=1e-5, atol=1e-5)  # cumulative sums in float32
    assert net.reach() == MonitorNet(3, window=6, channels=4, latent=2, kernel=3, persist=1).reach() + 3
