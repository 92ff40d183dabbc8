"""Work queues: who owns a customer, where a task goes, what each person has to do.

* `routing.py` (pure): a task goes to the customer's owner when the owner may do tasks of
  its role, else it waits in the queue of that role, which any user of that role (or of a
  role above it) can take.
* `people.py`: the users work can go to, and the customers' owners (SQL).
* `tasks.py`: `new_task`, the one way a task is created (dunning steps, broken promises,
  uncertain sends): routed as above.
* `lists.py`: the alerts inbox and the task lists, filtered and paginated in SQL.
* `actions.py`: acknowledge / assign alerts (one or many), take / complete a task, set or
  clear a customer's owner; used alike by the pages, the API and the CLI.
"""
