// Placeholder: helper feat/dash-views replaces this file with the Schedules screen.
import { Placeholder } from "../components/Placeholder";

export default function SchedulesPage() {
  return <Placeholder title="Schedules" />;
}
