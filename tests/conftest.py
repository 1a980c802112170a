import os

import torch

# Tests run on 2 shared cores: one intra-op thread per test process keeps runs predictable.
torch.set_num_threads(int(os.environ.get("CNNZOO_TEST_THREADS", "1")))
