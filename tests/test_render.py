"""Gantt charts: every lane labelled with its node, a key (text) and a task-type legend (image)."""

from __future__ import annotations

import re

import numpy as np

from wass_env.render import gantt_figure, gantt_text, lane_label, lanes
from wass_env.sim.cluster import Cluster
from wass_env.sim.plan import PlanBuilder
from wass_env.sim.problem import Problem
from wass_env.sim.workflow import Workflow


def _problem() -> tuple[Problem, np.ndarray, np.ndarray, np.ndarray]:
    # Three independent tasks on a 2-core node "big" and one on a 1-core node "small":
    # t0, t1 overlap on big (two lanes), t2 follows t0 on big's first lane, t3 on small.
    wf = Workflow(
        name="four",
        ids=["t0", "t1", "t2", "t3"],
        work=[4.0, 4.0, 2.0, 3.0],
        cores=[1, 1, 1, 1],
        task_type=["sim", "sim", "post", ""],
    )
    cl = Cluster(name="two", speed=[1.0, 1.0], cores=[2, 1], node_name=["big", "small"])
    problem = Problem(wf, cl)
    b = PlanBuilder(problem)
    for task, node in ((0, 0), (1, 0), (2, 0), (3, 1)):
        b.assign(task, node)
    plan = b.plan()
    return problem, plan.node, plan.start, plan.finish


def test_lanes_and_labels() -> None:
    problem, node, start, finish = _problem()
    assert start.tolist() == [0.0, 0.0, 4.0, 0.0]
    assert lanes(node, start, finish, 2) == [[[0, 2], [1]], [[3]]]
    assert lane_label(problem, 0, 1) == "big/1"


def test_text_gantt_rows_and_key() -> None:
    problem, node, start, finish = _problem()
    text = gantt_text(problem, node, start, finish, width=12)
    lines = text.splitlines()
    assert lines[0] == "four on two: 4/4 tasks placed, makespan 6 s"
    # width 12 over 6 s: 2 characters per second.
    assert lines[1] == "big/0  |aaaaaaaacccc|"
    assert lines[2] == "big/1  |bbbbbbbb    |"
    assert lines[3] == "small/0|dddddd      |"
    key = " ".join(lines[5:])
    assert key.startswith("key:")
    # By start time, then id; t3 has no type.
    entries = re.findall(r"(\w)=t(\d)( [a-z]+)?", key)
    assert entries == [("a", "0", " sim"), ("b", "1", " sim"), ("d", "3", ""), ("c", "2", " post")]


def test_image_gantt_labels_and_legend() -> None:
    import matplotlib.pyplot as plt

    problem, node, start, finish = _problem()
    fig = gantt_figure(problem, node, start, finish)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["big/0", "big/1", "small/0"]
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["(no type)", "post", "sim"]
    # Bars take their type's colour: the two "sim" bars share one, "post" has another.
    colors = [[tuple(np.round(f, 3)) for f in c.get_facecolor()] for c in ax.collections]
    big0, big1, small0 = colors  # one bar collection per lane: [t0, t2], [t1], [t3]
    assert big0[0] == big1[0] != big0[1] != small0[0] != big0[0]
    plt.close(fig)
