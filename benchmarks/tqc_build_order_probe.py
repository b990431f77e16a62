"""One-off probe (docs/benchmarks/findings.md): contrib TQC vs sb3_natgrad TQC (variants off) train() time, which is built first swapped."""
import sys, time, copy
import numpy as np, torch as th
th.set_num_threads(1)
import gymnasium as gym
from sb3_contrib import TQC as CTQC
from sb3_natgrad import TQC as NTQC

first = sys.argv[1]  # which class is built first: "contrib" | "ours" | "contrib2"
classes = {"contrib": CTQC, "ours": NTQC}
order = [first, "contrib" if first != "contrib" else ("ours" if sys.argv[2] == "ours" else "contrib")]
kw = dict(learning_starts=0, buffer_size=20000, batch_size=256, policy_kwargs=dict(net_arch=[256, 256], n_critics=2), seed=0, verbose=0)
models = []
for name in order:
    m = classes[name]("MlpPolicy", "Pendulum-v1", **kw)
    models.append(m)
m0 = models[0]
m0.learn(2000)
for m in models[1:]:
    m.policy.load_state_dict(m0.policy.state_dict())
    m.replay_buffer = copy.deepcopy(m0.replay_buffer)
    m._setup_learn(1000)
states = [copy.deepcopy(m.policy.state_dict()) for m in models]
def call(i):
    m = models[i]; m.policy.load_state_dict(states[i]); th.manual_seed(0)
    t = time.perf_counter(); m.train(64, 256); return time.perf_counter() - t
for _ in range(2):
    call(0); call(1)
t = {0: [], 1: []}
for k in range(16):
    for i in ((0, 1) if k % 2 == 0 else (1, 0)):
        t[i].append(call(i))
r = np.array(t[1]) / np.array(t[0])
print(order, "median ms", [round(np.median(t[i]) * 1e3, 1) for i in (0, 1)], "ratio second/first", round(float(np.median(r)), 3))
