"""The league's processes: the evaluation of one job, local workers and the Ray executor, the
scheduler, the demo league and the ``paddock demo`` launcher.
"""
