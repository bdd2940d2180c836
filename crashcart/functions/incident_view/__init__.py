"""The central incident view: member incident updates and central dump arrivals -> one table.

Deployed by ``OrganisationCentral``; entry ``handler.handler``.
"""
