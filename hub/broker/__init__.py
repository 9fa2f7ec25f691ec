"""RabbitMQ at the hub's edge: topology, management-API provisioning, connections."""
