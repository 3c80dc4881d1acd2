"""The Knowledge-Guided Teacher of WASS-RAG.

Parts, each behind a small interface so it can be replaced:

* :mod:`teacher.kb`: the knowledge base of past runs and decisions, with cosine-similarity
  retrieval (:mod:`teacher.retrieval`: FAISS exact/HNSW/IVF or brute-force NumPy);
* :mod:`teacher.features`: state and action features read from the simulator;
* :mod:`teacher.encoder`: the GNN state encoder; :mod:`teacher.predictor`: the makespan
  predictor and :class:`~teacher.predictor.TeacherModel` (NumPy inference, atomic save/load);
* :mod:`teacher.build` (stage 1: seed the base) and :mod:`teacher.training` (stage 2: train);
* :mod:`teacher.teacher`: a*_t and R_RAG; :mod:`teacher.wrapper`: the ``gym.Wrapper`` adding
  ``lambda * R_RAG`` to the reward; :mod:`teacher.explain`: retrieved cases and per-node
  predictions of a decision.

Typical use::

    from teacher import KnowledgeBase, RAGRewardWrapper, Teacher, TeacherModel

    model = TeacherModel.load("runs/teacher/model.wtm")
    kb = KnowledgeBase.load("runs/teacher/kb.wkb")
    env = RAGRewardWrapper(gym.make("WassSched-v0"), Teacher(model, kb), lam=0.1)
"""

from teacher.explain import Explanation, explain, explain_step
from teacher.kb import KnowledgeBase, KnowledgeBaseError
from teacher.predictor import ModelError, TeacherModel
from teacher.retrieval import FaissRetriever, NumpyRetriever, Retriever, make_retriever
from teacher.teacher import REWARD_MODES, Evaluation, Teacher, TeacherScheduler, load_teacher
from teacher.wrapper import RAGRewardWrapper

__all__ = [
    "REWARD_MODES",
    "Evaluation",
    "Explanation",
    "FaissRetriever",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "ModelError",
    "NumpyRetriever",
    "RAGRewardWrapper",
    "Retriever",
    "Teacher",
    "TeacherModel",
    "TeacherScheduler",
    "explain",
    "explain_step",
    "load_teacher",
    "make_retriever",
]
