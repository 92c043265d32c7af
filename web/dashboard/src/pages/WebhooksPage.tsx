// Placeholder: helper feat/dash-views replaces this file with the Webhooks screen.
import { Placeholder } from "../components/Placeholder";

export default function WebhooksPage() {
  return <Placeholder title="Webhooks" />;
}
